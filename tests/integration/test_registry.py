"""Renamed and disabled entities: a rename keeps tracking, disabling is no failure."""

from __future__ import annotations

from typing import Any

import pytest
from freezegun.api import FrozenDateTimeFactory
from homeassistant.core import Event, HomeAssistant
from homeassistant.helpers import entity_registry as er
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.farm_resilience.const import DEFAULT_OPTIONS

from .sim import Behaviour, Farm
from .support import FAILED, RATE, advance, call, outcomes

TRACKING = [
    DEFAULT_OPTIONS,
    {**DEFAULT_OPTIONS, "tracked_entities": ["switch.pump_1", "valve.field_1"]},
]


@pytest.mark.parametrize("options", TRACKING, ids=["every_entity", "listed_entities"])
async def test_renaming_an_entity_while_its_command_is_pending_keeps_the_command(
    hass: HomeAssistant,
    command_events: list[Event[Any]],
    farm: Farm,
    hub: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
) -> None:
    farm.default = Behaviour(delay=lambda rng: 3.0)
    await call(hass, "switch.turn_on", entity_id="switch.pump_1")
    await advance(hass, freezer, 1.0)

    er.async_get(hass).async_update_entity("switch.pump_1", new_entity_id="switch.well_pump")
    await hass.async_block_till_done()
    await advance(hass, freezer, 2.0)

    assert hass.states.get("switch.well_pump").state == "on"
    assert [
        (e.data["entity_id"], e.data["outcome"], e.data["latency_s"]) for e in command_events
    ] == [("switch.well_pump", "success", 3.0)]
    assert hass.states.get(FAILED).state == "0"


@pytest.mark.parametrize("options", TRACKING[1:], ids=["listed_entities"])
async def test_renaming_a_listed_entity_updates_the_list_and_keeps_measuring_it(
    hass: HomeAssistant,
    command_events: list[Event[Any]],
    farm: Farm,
    hub: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
) -> None:

    er.async_get(hass).async_update_entity("switch.pump_1", new_entity_id="switch.well_pump")
    await hass.async_block_till_done()
    await call(hass, "switch.turn_on", entity_id="switch.well_pump")
    await advance(hass, freezer, 1.0)

    assert hub.options["tracked_entities"] == ["switch.well_pump", "valve.field_1"]
    assert "switch.well_pump" in hub.runtime_data.tracker.followed
    assert outcomes(command_events) == [("switch.well_pump", "success")]


@pytest.mark.parametrize("options", TRACKING, ids=["every_entity", "listed_entities"])
async def test_disabling_an_entity_while_its_command_is_pending_is_no_failure(
    hass: HomeAssistant,
    command_events: list[Event[Any]],
    farm: Farm,
    hub: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
) -> None:
    farm.default = Behaviour(delay=lambda rng: 3.0)
    await call(hass, "switch.turn_on", entity_id="switch.pump_1")
    await advance(hass, freezer, 1.0)

    er.async_get(hass).async_update_entity(
        "switch.pump_1", disabled_by=er.RegistryEntryDisabler.USER
    )
    await hass.async_block_till_done()
    await advance(hass, freezer, 10.0)

    assert hass.states.get("switch.pump_1") is None
    assert command_events == []
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
