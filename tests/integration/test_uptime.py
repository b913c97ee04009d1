"""Uptime: each device's availability over the window, the fleet's, kept across reloads/restarts.

Time moves in 5-minute steps, the hub's tick, which is when the per-device list is
refreshed; the simulated outages are known to the second, and so is every figure.
"""

from __future__ import annotations

from typing import Any

import pytest
from freezegun.api import FrozenDateTimeFactory
from homeassistant import loader
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_capture_events,
    async_test_home_assistant,
)

from custom_components.farm_resilience.const import DOMAIN, EVENT_OUTAGE_OVER

from .sim import SIM_DOMAIN, Farm
from .support import advance, pump_house_issue, take_down_pump_house

AVAILABILITY = "sensor.farm_resilience_device_availability"
TICK_S = 300.0
WELL_PUMP = "switch.well_pump"


async def ticks(hass: HomeAssistant, freezer: FrozenDateTimeFactory, count: int) -> None:
    """Move time on by `count` of the hub's 5-minute ticks."""
    for _ in range(count):
        await advance(hass, freezer, TICK_S)


def availability(hass: HomeAssistant) -> tuple[float, dict[str, Any]]:
    """Return the fleet's availability and the sensor's attributes."""
    state = hass.states.get(AVAILABILITY)
    assert state is not None
    return float(state.state), dict(state.attributes)


async def test_each_device_and_the_fleet_show_the_share_of_watched_time_they_were_up(
    hass: HomeAssistant, farm: Farm, hub: MockConfigEntry, freezer: FrozenDateTimeFactory
) -> None:
    await ticks(hass, freezer, 1)
    take_down_pump_house(farm)  # down from 5 to 15 minutes: 600 s
    await ticks(hass, freezer, 2)
    take_down_pump_house(farm, available=True)
    await ticks(hass, freezer, 1)
    farm.entities["cover.vent"].set_available(False)  # the greenhouse: 20 to 25 minutes
    farm.entities["light.grow_light"].set_available(False)
    await ticks(hass, freezer, 1)
    farm.entities["cover.vent"].set_available(True)
    await ticks(hass, freezer, 7)  # one hour watched

    fleet, attributes = availability(hass)

    assert fleet == pytest.approx(100 * (1 - (600 + 300) / (3 * 3600)))  # time-weighted
    assert attributes["devices"] == 3
    assert attributes["worst"] == [
        {"device": "Pump house", "availability": 83.333, "downtime_s": 600.0},
        {"device": "Greenhouse", "availability": 91.667, "downtime_s": 300.0},
    ]
    assert attributes["unit_of_measurement"] == "%"
    assert attributes["state_class"] == "measurement"


async def test_a_device_still_down_counts_its_downtime_up_to_now(
    hass: HomeAssistant, farm: Farm, hub: MockConfigEntry, freezer: FrozenDateTimeFactory
) -> None:
    await ticks(hass, freezer, 2)
    take_down_pump_house(farm)
    await ticks(hass, freezer, 2)

    fleet, attributes = availability(hass)

    assert fleet == pytest.approx(100 * (1 - 600 / (3 * 1200)))
    assert attributes["worst"] == [
        {"device": "Pump house", "availability": 50.0, "downtime_s": 600.0}
    ]


async def test_uptime_is_kept_across_a_reload(
    hass: HomeAssistant, farm: Farm, hub: MockConfigEntry, freezer: FrozenDateTimeFactory
) -> None:
    take_down_pump_house(farm)
    await ticks(hass, freezer, 1)  # down 300 s, and still down across the reload
    assert await hass.config_entries.async_reload(hub.entry_id)
    await hass.async_block_till_done()
    await ticks(hass, freezer, 1)
    take_down_pump_house(farm, available=True)
    await ticks(hass, freezer, 2)

    fleet, attributes = availability(hass)

    assert fleet == pytest.approx(100 * (1 - 600 / (3 * 1200)))
    assert attributes["worst"] == [
        {"device": "Pump house", "availability": 50.0, "downtime_s": 600.0}
    ]


async def test_uptime_survives_a_restart_and_the_time_home_assistant_was_stopped_counts_neither_way(
    hass: HomeAssistant,
    hub_entry: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
    hass_storage: dict[str, Any],
) -> None:
    hass.states.async_set(WELL_PUMP, "off")  # an entity without a device: it stands for itself
    assert await hass.config_entries.async_setup(hub_entry.entry_id)
    await hass.async_block_till_done()
    await ticks(hass, freezer, 1)
    hass.states.async_set(WELL_PUMP, "unavailable")
    await ticks(hass, freezer, 2)
    hass.states.async_set(WELL_PUMP, "off")
    await ticks(hass, freezer, 9)  # an hour: down 600 s of it
    assert availability(hass)[0] == pytest.approx(100 * (1 - 600 / 3600))
    await hass.async_stop()

    freezer.tick(3600)  # Home Assistant is stopped for an hour
    async with async_test_home_assistant() as restarted:
        restarted.data.pop(loader.DATA_CUSTOM_COMPONENTS)
        restarted.states.async_set(WELL_PUMP, "off")
        entry = MockConfigEntry(domain=DOMAIN, data={}, options=dict(hub_entry.options))
        entry.add_to_hass(restarted)
        assert await restarted.config_entries.async_setup(entry.entry_id)
        await restarted.async_block_till_done()
        await ticks(restarted, freezer, 12)  # another hour watched, all of it up

        fleet, attributes = availability(restarted)
        assert fleet == pytest.approx(100 * (1 - 600 / 7200))
        assert attributes["worst"] == [
            {"device": WELL_PUMP, "availability": 91.667, "downtime_s": 600.0}
        ]
        await restarted.async_stop()


async def test_a_cleared_outage_says_how_long_it_lasted(
    hass: HomeAssistant, farm: Farm, hub: MockConfigEntry, freezer: FrozenDateTimeFactory
) -> None:
    over = async_capture_events(hass, EVENT_OUTAGE_OVER)
    take_down_pump_house(farm)
    await advance(hass, freezer, 95.0)
    assert pump_house_issue(hass) is not None

    take_down_pump_house(farm, available=True)
    await hass.async_block_till_done()

    assert pump_house_issue(hass) is None
    device = dr.async_get(hass).async_get_device(identifiers={(SIM_DOMAIN, "Pump house")})
    assert device is not None
    assert [event.data for event in over] == [
        {"device": "Pump house", "device_id": device.id, "outage": "down", "lasted_s": 95.0}
    ]


@pytest.mark.parametrize("options", [{"outage_alert": 60}])
async def test_a_flapping_device_that_settles_says_how_long_its_outage_lasted(
    hass: HomeAssistant, farm: Farm, hub: MockConfigEntry, freezer: FrozenDateTimeFactory
) -> None:
    over = async_capture_events(hass, EVENT_OUTAGE_OVER)
    for _ in range(3):  # down 40 s, up 5 s: flapping once 60 s of downtime add up
        take_down_pump_house(farm)
        await advance(hass, freezer, 40.0)
        take_down_pump_house(farm, available=True)
        await advance(hass, freezer, 5.0)
    assert pump_house_issue(hass) is not None

    for _ in range(60):  # the spells leave the flap window (5 x 60 s)
        await advance(hass, freezer, 5.0)

    assert pump_house_issue(hass) is None
    (event,) = over
    assert (event.data["device"], event.data["outage"]) == ("Pump house", "flapping")
    # From its first spell (at 0 s) until the downtime within the last 300 s fell under
    # 60 s: the first spell [0, 40] has left, the second [45, 85] lost 20 s, at 365 s.
    assert event.data["lasted_s"] == pytest.approx(365.0, abs=5.0)
