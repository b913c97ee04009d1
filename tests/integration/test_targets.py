"""Which calls and entities the tracker follows: targets, tracked list, later entities."""

from __future__ import annotations

from typing import Any

import pytest
from freezegun.api import FrozenDateTimeFactory
from homeassistant.core import Event, HomeAssistant, ServiceCall
from homeassistant.helpers import (
    area_registry as ar,
)
from homeassistant.helpers import (
    device_registry as dr,
)
from homeassistant.helpers import (
    entity_registry as er,
)
from homeassistant.helpers import (
    label_registry as lr,
)
from pytest_homeassistant_custom_component.common import MockConfigEntry

from .sim import SIM_DOMAIN, Farm
from .support import advance, call, outcomes


def device_id(hass: HomeAssistant, name: str) -> str:
    """Return the id of a simulated device."""
    device = dr.async_get(hass).async_get_device(identifiers={(SIM_DOMAIN, name)})
    assert device is not None
    return device.id


async def test_targets_by_area_device_and_label_resolve_to_their_entities(
    hass: HomeAssistant,
    command_events: list[Event[Any]],
    farm: Farm,
    hub: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
) -> None:
    greenhouse = ar.async_get(hass).async_create("Greenhouse")
    dr.async_get(hass).async_update_device(device_id(hass, "Greenhouse"), area_id=greenhouse.id)
    irrigation = lr.async_get(hass).async_create("Irrigation")
    er.async_get(hass).async_update_entity("valve.field_1", labels={irrigation.label_id})

    await call(hass, "light.turn_on", area_id=greenhouse.id)
    await call(hass, "switch.turn_on", device_id=device_id(hass, "Pump house"))
    await call(hass, "valve.open_valve", label_id=irrigation.label_id)
    await advance(hass, freezer, 1.0)

    assert set(outcomes(command_events)) == {
        ("light.grow_light", "success"),
        ("switch.pump_1", "success"),
        ("switch.pump_2", "success"),
        ("valve.field_1", "success"),
    }


async def test_comma_separated_and_all_targets_are_resolved(
    hass: HomeAssistant, command_events: list[Event[Any]], farm: Farm, hub: MockConfigEntry
) -> None:

    await call(hass, "switch.turn_on", entity_id="switch.pump_1, switch.pump_2")
    await call(hass, "switch.turn_off", entity_id="all")
    await hass.async_block_till_done()

    assert sorted(
        (e.data["service"], e.data["entity_id"], e.data["outcome"]) for e in command_events
    ) == [
        ("turn_off", "switch.pump_1", "success"),
        ("turn_off", "switch.pump_2", "success"),
        ("turn_on", "switch.pump_1", "success"),
        ("turn_on", "switch.pump_2", "success"),
    ]


@pytest.mark.parametrize("options", [{"tracked_entities": ["switch.pump_1"]}])
async def test_only_tracked_entities_are_measured_when_a_list_is_given(
    hass: HomeAssistant, command_events: list[Event[Any]], farm: Farm, hub_entry: MockConfigEntry
) -> None:
    assert await hass.config_entries.async_setup(hub_entry.entry_id)

    await call(hass, "switch.turn_on", entity_id=["switch.pump_1", "switch.pump_2"])
    await hass.async_block_till_done()

    assert set(outcomes(command_events)) == {("switch.pump_1", "success")}


async def test_actions_the_tracker_does_not_understand_are_ignored(
    hass: HomeAssistant, command_events: list[Event[Any]], farm: Farm, hub: MockConfigEntry
) -> None:
    calls: list[ServiceCall] = []
    hass.services.async_register("switch", "calibrate", calls.append)

    await call(hass, "switch.calibrate", entity_id="switch.pump_1")
    await hass.async_block_till_done()

    assert len(calls) == 1
    assert command_events == []


async def test_entities_added_after_set_up_are_tracked_when_tracking_everything(
    hass: HomeAssistant, command_events: list[Event[Any]], farm: Farm, hub: MockConfigEntry
) -> None:
    hass.states.async_set("switch.late_pump", "off")

    # No entity object answers: the call only fires the event the tracker follows.
    hass.bus.async_fire(
        "call_service",
        {
            "domain": "switch",
            "service": "turn_on",
            "service_data": {"entity_id": "switch.late_pump"},
        },
    )
    await hass.async_block_till_done()
    hass.states.async_set("switch.late_pump", "on")
    await hass.async_block_till_done()

    assert set(outcomes(command_events)) == {("switch.late_pump", "success")}
