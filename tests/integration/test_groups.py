"""Groups and wrappers: a command is counted once per device it reaches, never per layer."""

from __future__ import annotations

from typing import Any

import pytest
from freezegun.api import FrozenDateTimeFactory
from homeassistant.const import Platform
from homeassistant.core import Event, HomeAssistant
from homeassistant.exceptions import ServiceValidationError
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.farm_resilience.const import DEFAULT_OPTIONS, DOMAIN

from .sim import Behaviour, Farm, Layout
from .support import RATE, add_group, add_switch_as_x, advance, call, outcomes


@pytest.fixture
def layout() -> Layout:
    """Two grow beds with a light each, two fence relays, and a relay driving a lamp."""
    return {
        "Beds": [
            (Platform.LIGHT, "bed_1", "Bed 1"),
            (Platform.LIGHT, "bed_2", "Bed 2"),
        ],
        "Fence": [
            (Platform.SWITCH, "fence_north", "Fence north"),
            (Platform.SWITCH, "fence_south", "Fence south"),
        ],
        "Yard": [(Platform.SWITCH, "yard_relay", "Yard relay")],
    }


@pytest.fixture
async def helpers(hass: HomeAssistant, farm: Farm) -> None:
    """A light group, a switch group and the yard relay shown as a light (switch_as_x)."""
    await add_group(hass, "light", "Bed lights", ["light.bed_1", "light.bed_2"])
    await add_group(hass, "switch", "Fence", ["switch.fence_north", "switch.fence_south"])
    await add_switch_as_x(hass, "switch.yard_relay", "light")
    assert hass.states.get("light.bed_lights") is not None
    assert hass.states.get("switch.fence") is not None
    assert hass.states.get("light.yard_relay") is not None


async def test_light_group_counts_one_command_per_light_not_one_for_the_group(
    hass: HomeAssistant,
    command_events: list[Event[Any]],
    helpers: None,
    farm: Farm,
    hub: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
) -> None:
    farm.behaviour["light.bed_2"] = Behaviour(drop_probability=1.0)

    await call(hass, "light.turn_on", entity_id="light.bed_lights")
    await advance(hass, freezer, 5.0)

    assert sorted(outcomes(command_events)) == [
        ("light.bed_1", "success"),
        ("light.bed_2", "timeout"),
    ]
    assert len({e.context.id for e in command_events}) == 1  # both carry the call's context
    assert hass.states.get(RATE).state == "50.0"
    assert hass.states.get(RATE).attributes["commands"] == 2


async def test_switch_group_counts_its_two_switches(
    hass: HomeAssistant,
    command_events: list[Event[Any]],
    helpers: None,
    farm: Farm,
    hub: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
) -> None:

    await call(hass, "switch.turn_on", entity_id="switch.fence")
    await advance(hass, freezer, 1.0)

    assert sorted(outcomes(command_events)) == [
        ("switch.fence_north", "success"),
        ("switch.fence_south", "success"),
    ]
    assert hass.states.get(RATE).attributes["commands"] == 2


async def test_relay_shown_as_a_light_counts_once_on_the_relay(
    hass: HomeAssistant,
    command_events: list[Event[Any]],
    helpers: None,
    farm: Farm,
    hub: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
) -> None:

    await call(hass, "light.turn_on", entity_id="light.yard_relay")
    await advance(hass, freezer, 1.0)

    assert hass.states.get("light.yard_relay").state == "on"
    assert sorted(outcomes(command_events)) == [("switch.yard_relay", "success")]
    assert hass.states.get(RATE).attributes["commands"] == 1


@pytest.mark.parametrize(
    "options",
    [{**DEFAULT_OPTIONS, "tracked_entities": ["light.bed_lights"]}],
    ids=["only_the_group_listed"],
)
async def test_a_listed_group_is_measured_on_its_lights(
    hass: HomeAssistant,
    command_events: list[Event[Any]],
    helpers: None,
    farm: Farm,
    hub_entry: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
) -> None:
    assert await hass.config_entries.async_setup(hub_entry.entry_id)
    await hass.async_block_till_done()

    await call(hass, "light.turn_on", entity_id="light.bed_lights")
    await advance(hass, freezer, 1.0)

    assert sorted(outcomes(command_events)) == [
        ("light.bed_1", "success"),
        ("light.bed_2", "success"),
    ]


async def test_send_command_to_a_group_names_its_members_and_sends_nothing(
    hass: HomeAssistant, helpers: None, farm: Farm, hub: MockConfigEntry
) -> None:
    with pytest.raises(ServiceValidationError) as raised:
        await hass.services.async_call(
            DOMAIN,
            "send_command",
            {"entity_id": "light.bed_lights", "action": "light.turn_on"},
            blocking=True,
        )

    assert raised.value.translation_key == "target_is_group"
    assert raised.value.translation_placeholders == {
        "entity_id": "light.bed_lights",
        "members": "light.bed_1, light.bed_2",
    }
    assert farm.records == []


async def test_is_virtual_tells_groups_and_wrappers_from_devices(
    hass: HomeAssistant, helpers: None, farm: Farm
) -> None:
    from custom_components.farm_resilience.virtual import is_virtual, leaves  # noqa: PLC0415

    assert is_virtual(hass, "light.bed_lights")
    assert is_virtual(hass, "switch.fence")
    assert is_virtual(hass, "light.yard_relay")
    assert not is_virtual(hass, "light.bed_1")
    assert not is_virtual(hass, "switch.yard_relay")
    assert leaves(hass, "light.bed_lights") == ["light.bed_1", "light.bed_2"]
    assert leaves(hass, "light.yard_relay") == ["switch.yard_relay"]
    assert leaves(hass, "switch.fence_north") == ["switch.fence_north"]
