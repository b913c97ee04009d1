"""The window's statistics survive an unload/reload and a Home Assistant stop/start."""

from __future__ import annotations

from typing import Any

from freezegun.api import FrozenDateTimeFactory
from homeassistant import loader
from homeassistant.core import HomeAssistant
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_capture_events,
    async_test_home_assistant,
)

from custom_components.farm_resilience.const import DOMAIN, EVENT_COMMAND, STORAGE_KEY

from .conftest import advance
from .sim import Behaviour, Farm

RATE = "sensor.farm_resilience_command_success_rate"


async def one_success_one_timeout(
    hass: HomeAssistant, farm: Farm, freezer: FrozenDateTimeFactory
) -> None:
    """Leave one success and one timeout in the window."""
    await hass.services.async_call(
        "switch", "turn_on", {"entity_id": "switch.pump_1"}, blocking=True
    )
    farm.behaviour["switch.pump_2"] = Behaviour(drop_probability=1.0)
    await hass.services.async_call(
        "switch", "turn_on", {"entity_id": "switch.pump_2"}, blocking=True
    )
    await advance(hass, freezer, 6.0)
    assert hass.states.get(RATE).state == "50.0"


async def test_statistics_survive_unload_and_reload(
    hass: HomeAssistant, farm: Farm, hub: MockConfigEntry, freezer: FrozenDateTimeFactory
) -> None:
    await one_success_one_timeout(hass, farm, freezer)

    assert await hass.config_entries.async_reload(hub.entry_id)
    await hass.async_block_till_done()

    assert hass.states.get(RATE).state == "50.0"
    assert hass.states.get(RATE).attributes["commands"] == 2


async def test_statistics_survive_stop_and_start_and_pending_commands_are_dropped(
    hass: HomeAssistant,
    farm: Farm,
    hub: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
    hass_storage: dict[str, Any],
) -> None:
    await one_success_one_timeout(hass, farm, freezer)
    events = async_capture_events(hass, EVENT_COMMAND)
    await hass.services.async_call(
        "switch", "turn_on", {"entity_id": "switch.pump_2"}, blocking=True
    )
    assert hub.runtime_data.tracker.pending

    await hass.async_stop()

    assert events == []  # the pending command got no outcome: it was dropped
    stored = hass_storage[STORAGE_KEY]["data"]
    assert sum(bucket["counts"]["success"] for bucket in stored["buckets"]) == 1
    assert sum(bucket["counts"]["timeout"] for bucket in stored["buckets"]) == 1

    async with async_test_home_assistant() as restarted:
        restarted.data.pop(loader.DATA_CUSTOM_COMPONENTS)
        entry = MockConfigEntry(domain=DOMAIN, data={}, options=dict(hub.options))
        entry.add_to_hass(restarted)
        assert await restarted.config_entries.async_setup(entry.entry_id)
        await restarted.async_block_till_done()

        assert restarted.states.get(RATE).state == "50.0"
        assert restarted.states.get(RATE).attributes["commands"] == 2
        await restarted.async_stop()


async def test_statistics_are_saved_within_a_minute_under_steady_traffic(
    hass: HomeAssistant,
    farm: Farm,
    hub: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
    hass_storage: dict[str, Any],
) -> None:
    for _ in range(4):  # a command every 20 s: a debounced save would never happen
        await hass.services.async_call(
            "switch", "toggle", {"entity_id": "switch.pump_1"}, blocking=True
        )
        await advance(hass, freezer, 20.0)

    stored = hass_storage[STORAGE_KEY]["data"]
    assert sum(bucket["counts"]["success"] for bucket in stored["buckets"]) == 3
