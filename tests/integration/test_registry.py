"""Renamed and disabled entities: a rename keeps tracking, disabling is no failure."""

from __future__ import annotations

from typing import Any

import pytest
from freezegun.api import FrozenDateTimeFactory
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_capture_events

from custom_components.farm_resilience.const import DEFAULT_OPTIONS, EVENT_COMMAND

from .sim import Behaviour, Farm
from .support import advance

RATE = "sensor.farm_resilience_command_success_rate"
FAILED = "sensor.farm_resilience_commands_failed"
TRACKING = [
    DEFAULT_OPTIONS,
    {**DEFAULT_OPTIONS, "tracked_entities": ["switch.pump_1", "valve.field_1"]},
]


def outcomes(events: list[Any]) -> list[tuple[str, str]]:
    """Return (entity, outcome) of captured command events."""
    return [(e.data["entity_id"], e.data["outcome"]) for e in events]


@pytest.mark.parametrize("options", TRACKING, ids=["every_entity", "listed_entities"])
async def test_renaming_an_entity_while_its_command_is_pending_keeps_the_command(
    hass: HomeAssistant, farm: Farm, hub: MockConfigEntry, freezer: FrozenDateTimeFactory
) -> None:
    farm.default = Behaviour(delay=lambda rng: 3.0)
    events = async_capture_events(hass, EVENT_COMMAND)
    await hass.services.async_call(
        "switch", "turn_on", {"entity_id": "switch.pump_1"}, blocking=True
    )
    await advance(hass, freezer, 1.0)

    er.async_get(hass).async_update_entity("switch.pump_1", new_entity_id="switch.well_pump")
    await hass.async_block_till_done()
    await advance(hass, freezer, 2.0)

    assert hass.states.get("switch.well_pump").state == "on"
    assert [(e.data["entity_id"], e.data["outcome"], e.data["latency_s"]) for e in events] == [
        ("switch.well_pump", "success", 3.0)
    ]
    assert hass.states.get(FAILED).state == "0"


@pytest.mark.parametrize("options", TRACKING[1:], ids=["listed_entities"])
async def test_renaming_a_listed_entity_updates_the_list_and_keeps_measuring_it(
    hass: HomeAssistant, farm: Farm, hub: MockConfigEntry, freezer: FrozenDateTimeFactory
) -> None:
    events = async_capture_events(hass, EVENT_COMMAND)

    er.async_get(hass).async_update_entity("switch.pump_1", new_entity_id="switch.well_pump")
    await hass.async_block_till_done()
    await hass.services.async_call(
        "switch", "turn_on", {"entity_id": "switch.well_pump"}, blocking=True
    )
    await advance(hass, freezer, 1.0)

    assert hub.options["tracked_entities"] == ["switch.well_pump", "valve.field_1"]
    assert "switch.well_pump" in hub.runtime_data.tracker.followed
    assert outcomes(events) == [("switch.well_pump", "success")]


@pytest.mark.parametrize("options", TRACKING, ids=["every_entity", "listed_entities"])
async def test_disabling_an_entity_while_its_command_is_pending_is_no_failure(
    hass: HomeAssistant, farm: Farm, hub: MockConfigEntry, freezer: FrozenDateTimeFactory
) -> None:
    farm.default = Behaviour(delay=lambda rng: 3.0)
    events = async_capture_events(hass, EVENT_COMMAND)
    await hass.services.async_call(
        "switch", "turn_on", {"entity_id": "switch.pump_1"}, blocking=True
    )
    await advance(hass, freezer, 1.0)

    er.async_get(hass).async_update_entity(
        "switch.pump_1", disabled_by=er.RegistryEntryDisabler.USER
    )
    await hass.async_block_till_done()
    await advance(hass, freezer, 10.0)

    assert hass.states.get("switch.pump_1") is None
    assert events == []
    assert hub.runtime_data.tracker.pending == {}
    assert hass.states.get(RATE).state == "unknown"
    assert hass.states.get(FAILED).state == "0"


@pytest.mark.parametrize("options", TRACKING, ids=["every_entity", "listed_entities"])
async def test_renaming_an_entity_keeps_its_figures_in_the_window_under_the_new_id(
    hass: HomeAssistant, farm: Farm, hub: MockConfigEntry, freezer: FrozenDateTimeFactory
) -> None:
    farm.behaviour["switch.pump_1"] = Behaviour(drop_first=1)
    for service in ("turn_on", "turn_on"):  # the first is dropped, the second taken
        await hass.services.async_call(
            "switch", service, {"entity_id": "switch.pump_1"}, blocking=True
        )
        await advance(hass, freezer, 10.0)

    er.async_get(hass).async_update_entity("switch.pump_1", new_entity_id="switch.well_pump")
    await hass.async_block_till_done()
    await advance(hass, freezer, 1.0)

    offenders = hass.states.get(FAILED).attributes["worst_offenders"]
    assert [(o["entity_id"], o["commands"], o["failed"]) for o in offenders] == [
        ("switch.well_pump", 2, 1)
    ]
