"""Stale sensors: silence far beyond a sensor's own rhythm, or past stale_after, is stale."""

from __future__ import annotations

from typing import Any

import pytest
from freezegun.api import FrozenDateTimeFactory
from homeassistant import loader
from homeassistant.core import HomeAssistant
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_capture_events,
    async_test_home_assistant,
)

from custom_components.farm_resilience.const import DOMAIN, EVENT_DEGRADED, EVENT_RECOVERED

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


async def report_every(
    hass: HomeAssistant, freezer: FrozenDateTimeFactory, sensor: str, seconds: float, times: int
) -> None:
    """Let a sensor report `times` times, `seconds` apart (the same value: a report too)."""
    for _ in range(times):
        await advance(hass, freezer, seconds)
        hass.states.async_set(sensor, "31")


async def test_sensor_reporting_every_10_s_is_stale_after_a_minute_of_silence_not_15(
    hass: HomeAssistant, soil_hub: MockConfigEntry, freezer: FrozenDateTimeFactory
) -> None:
    await report_every(hass, freezer, SOIL, 10.0, 30)
    await advance(hass, freezer, 59.0)
    assert hass.states.get(STALE).state == "0"

    await advance(hass, freezer, 61.0)  # two minutes of silence

    assert hass.states.get(STALE).attributes["sensors"] == [SOIL]
    assert hass.states.get(DEGRADED).attributes["reasons"] == [
        "sensor.soil_moisture: no report for more than 60 s (it usually reports within 10 s)"
    ]
    hass.states.async_set(SOIL, "30")
    await hass.async_block_till_done()
    assert hass.states.get(STALE).state == "0"


@pytest.mark.parametrize("options", [{"monitored_sensors": [SOIL], "stale_after": 7200}])
async def test_sensor_reporting_every_30_minutes_is_not_stale_after_20_but_after_90(
    hass: HomeAssistant, soil_hub: MockConfigEntry, freezer: FrozenDateTimeFactory
) -> None:
    await report_every(hass, freezer, SOIL, 1800.0, 6)
    await advance(hass, freezer, 1200.0)
    assert hass.states.get(STALE).state == "0"

    await advance(hass, freezer, 4200.0)  # 3 x its 30 minutes, under stale_after (2 h)

    assert hass.states.get(DEGRADED).attributes["reasons"] == [
        "sensor.soil_moisture: no report for more than 5400 s (it usually reports within 1800 s)"
    ]


async def test_bursts_and_a_rare_gap_do_not_change_a_sensors_rhythm(
    hass: HomeAssistant, soil_hub: MockConfigEntry, freezer: FrozenDateTimeFactory
) -> None:
    await report_every(hass, freezer, SOIL, 10.0, 10)
    await report_every(hass, freezer, SOIL, 0.1, 5)  # a burst of quick reports
    await report_every(hass, freezer, SOIL, 50.0, 1)  # one long gap
    await report_every(hass, freezer, SOIL, 10.0, 4)
    await advance(hass, freezer, 59.0)
    assert hass.states.get(STALE).state == "0"

    await advance(hass, freezer, 1.0)

    assert hass.states.get(STALE).attributes["sensors"] == [SOIL]
    (reason,) = hass.states.get(DEGRADED).attributes["reasons"]
    assert reason.endswith("(it usually reports within 10 s)")


async def test_a_sensor_keeps_its_learned_rhythm_across_a_restart(
    hass: HomeAssistant,
    soil_hub: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
    hass_storage: dict[str, Any],
) -> None:
    await report_every(hass, freezer, SOIL, 10.0, 30)
    await hass.async_stop()

    async with async_test_home_assistant() as restarted:
        restarted.data.pop(loader.DATA_CUSTOM_COMPONENTS)
        restarted.states.async_set(SOIL, "31")
        entry = MockConfigEntry(domain=DOMAIN, data={}, options=dict(soil_hub.options))
        entry.add_to_hass(restarted)
        assert await restarted.config_entries.async_setup(entry.entry_id)
        await restarted.async_block_till_done()
        await advance(restarted, freezer, 61.0)

        assert restarted.states.get(STALE).attributes["sensors"] == [SOIL]
        await restarted.async_stop()
