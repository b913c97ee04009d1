"""Stale sensors: silence past stale_after is stale; repeating the same real value is not."""

from __future__ import annotations

import pytest
from freezegun.api import FrozenDateTimeFactory
from homeassistant.core import HomeAssistant
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_capture_events

from custom_components.farm_resilience.const import EVENT_DEGRADED, EVENT_RECOVERED

from .support import DEGRADED, STALE, advance, save_options

SOIL = "sensor.soil_moisture"
RAIN = "sensor.rain_gauge"


@pytest.fixture
def options(options: dict) -> dict:
    """Watch the soil moisture sensor, stale after 15 minutes."""
    return {**options, "monitored_sensors": [SOIL], "stale_after": 900}


@pytest.fixture
async def soil_hub(
    hass: HomeAssistant, hub_entry: MockConfigEntry, freezer: FrozenDateTimeFactory
) -> MockConfigEntry:
    """The hub watching a soil sensor that has just reported."""
    hass.states.async_set(SOIL, "31")
    assert await hass.config_entries.async_setup(hub_entry.entry_id)
    await hass.async_block_till_done()
    return hub_entry


async def test_sensor_repeating_the_same_value_is_not_stale(
    hass: HomeAssistant, soil_hub: MockConfigEntry, freezer: FrozenDateTimeFactory
) -> None:
    for _ in range(8):
        await advance(hass, freezer, 300.0)
        hass.states.async_set(SOIL, "31")  # same value: a state_reported, not a change
    await advance(hass, freezer, 600.0)

    assert (
        hass.states.get(SOIL).last_changed_timestamp < hass.states.get(SOIL).last_reported_timestamp
    )
    assert hass.states.get(STALE).state == "0"
    assert hass.states.get(DEGRADED).state == "off"


async def test_silent_sensor_goes_stale_and_recovers_when_it_reports(
    hass: HomeAssistant, soil_hub: MockConfigEntry, freezer: FrozenDateTimeFactory
) -> None:
    await advance(hass, freezer, 899.0)
    assert hass.states.get(STALE).state == "0"

    await advance(hass, freezer, 1.0)

    assert hass.states.get(STALE).state == "1"
    assert hass.states.get(STALE).attributes["sensors"] == [SOIL]
    assert hass.states.get(DEGRADED).attributes["reasons"] == [
        "sensor.soil_moisture: no report for more than 900 s"
    ]

    hass.states.async_set(SOIL, "31")
    await hass.async_block_till_done()

    assert hass.states.get(STALE).state == "0"
    assert hass.states.get(DEGRADED).state == "off"


@pytest.mark.parametrize("placeholder", ["unavailable", "unknown"])
async def test_sensor_rewriting_unavailable_or_unknown_goes_stale_as_if_silent(
    hass: HomeAssistant, soil_hub: MockConfigEntry, freezer: FrozenDateTimeFactory, placeholder: str
) -> None:
    hass.states.async_set(SOIL, placeholder)  # its device went offline; polled every 30 s
    for _ in range(29):
        await advance(hass, freezer, 30.0)
        hass.states.async_set(SOIL, placeholder)
    await advance(hass, freezer, 30.0)

    assert hass.states.get(STALE).state == "1"
    assert hass.states.get(DEGRADED).attributes["reasons"] == [
        "sensor.soil_moisture: no report for more than 900 s"
    ]

    hass.states.async_set(SOIL, "29")
    await hass.async_block_till_done()
    assert hass.states.get(STALE).state == "0"


async def test_saving_the_options_keeps_a_silent_sensor_stale(
    hass: HomeAssistant, soil_hub: MockConfigEntry, freezer: FrozenDateTimeFactory
) -> None:
    degraded = async_capture_events(hass, EVENT_DEGRADED)
    recovered = async_capture_events(hass, EVENT_RECOVERED)
    await advance(hass, freezer, 7200.0)
    assert hass.states.get(STALE).state == "1"

    await save_options(hass, soil_hub, latency_target=4.0)
    await advance(hass, freezer, 1.0)

    assert soil_hub.runtime_data.options.latency_target == 4.0
    assert hass.states.get(STALE).attributes["sensors"] == [SOIL]
    assert hass.states.get(DEGRADED).state == "on"
    assert (len(degraded), len(recovered)) == (1, 0)


async def test_a_sensor_added_to_the_monitored_ones_is_judged_from_its_last_report(
    hass: HomeAssistant, soil_hub: MockConfigEntry, freezer: FrozenDateTimeFactory
) -> None:
    hass.states.async_set(RAIN, "0.0")
    await advance(hass, freezer, 1000.0)
    hass.states.async_set(SOIL, "30")

    await save_options(hass, soil_hub, monitored_sensors=[SOIL, RAIN])
    await advance(hass, freezer, 1.0)

    assert hass.states.get(STALE).attributes["sensors"] == [RAIN]
