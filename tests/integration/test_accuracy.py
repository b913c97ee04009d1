"""Reported figures against the simulator's ground truth over several hundred commands."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pytest
from freezegun.api import FrozenDateTimeFactory
from homeassistant.const import Platform
from homeassistant.core import Event, HomeAssistant
from homeassistant.util.unit_system import US_CUSTOMARY_SYSTEM
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_fire_time_changed_exact,
)

from .sim import (
    Behaviour,
    Farm,
    Layout,
    Record,
    async_setup_farm,
    nearest_rank,
    relay_boards,
    unreliable_delay,
    within_histogram_bound,
)
from .support import add_group, add_switch_as_x, call

RELAYS = 20
ROUNDS = 20
TIMEOUT_S = 5.0
ROUND_S = 8.0


@pytest.fixture
def layout() -> Layout:
    """A farm of 20 relay boards."""
    return relay_boards(RELAYS)


async def run_until(
    hass: HomeAssistant, freezer: FrozenDateTimeFactory, farm: Farm, end: float
) -> None:
    """Move time from answer to answer (exact latencies), then to `end`."""
    while (due := farm.next_due(after=time.time())) is not None and due <= end:
        # One microsecond past the answer: the clock has microsecond resolution.
        freezer.tick(timedelta(seconds=due - time.time() + 1e-6))
        async_fire_time_changed_exact(hass)
        await hass.async_block_till_done()
    freezer.tick(timedelta(seconds=end - time.time()))
    async_fire_time_changed_exact(hass)
    await hass.async_block_till_done()


async def test_reported_success_rate_and_latency_match_ground_truth_over_400_commands(
    hass: HomeAssistant, farm: Farm, hub: MockConfigEntry, freezer: FrozenDateTimeFactory
) -> None:
    farm.default = Behaviour(drop_probability=0.03, delay=unreliable_delay)
    relays = [f"switch.relay_{index}" for index in range(RELAYS)]

    for _ in range(ROUNDS):
        start = time.time()
        for relay in relays:
            service = "turn_off" if hass.states.get(relay).state == "on" else "turn_on"
            await hass.services.async_call("switch", service, {"entity_id": relay}, blocking=True)
        await run_until(hass, freezer, farm, start + ROUND_S)

    latencies = [
        record.applied_at - record.received_at
        for record in farm.records
        if record.applied_at is not None and record.applied_at - record.received_at <= TIMEOUT_S
    ]
    failed = len(farm.records) - len(latencies)
    assert len(farm.records) == RELAYS * ROUNDS
    assert 10 < failed < 60  # the simulator really dropped and delayed commands

    rate = hass.states.get("sensor.farm_resilience_command_success_rate")
    assert rate.attributes["commands"] == RELAYS * ROUNDS
    assert float(rate.state) == pytest.approx(100 * len(latencies) / len(farm.records))
    assert int(hass.states.get("sensor.farm_resilience_commands_failed").state) == failed
    p50 = float(hass.states.get("sensor.farm_resilience_command_latency_p50").state)
    p95 = float(hass.states.get("sensor.farm_resilience_command_latency_p95").state)
    assert within_histogram_bound(p50, nearest_rank(latencies, 0.50)), (p50, latencies)
    assert within_histogram_bound(p95, nearest_rank(latencies, 0.95)), (p95, latencies)


MIXED_RELAYS = 8
# What the mixed fleet's rounds command besides the relays: a light group of two bed
# lights, a relay shown as a light (switch_as_x), a whole-degree °C brooder driven in °F.
GROUP = "light.bed_lights"
WRAPPER = "light.yard_relay"
BROODER = "climate.brooder"
LEAVES = {"light.bed_1", "light.bed_2", "switch.yard_relay", BROODER}


def mixed_layout() -> Layout:
    """Relay boards plus the devices behind the group, the wrapper and the thermostat."""
    return {
        **relay_boards(MIXED_RELAYS),
        "Beds": [(Platform.LIGHT, "bed_1", "Bed 1"), (Platform.LIGHT, "bed_2", "Bed 2")],
        "Yard": [(Platform.SWITCH, "yard_relay", "Yard relay")],
        "Brooder": [(Platform.CLIMATE, "brooder", "Brooder")],
    }


@pytest.fixture
def fahrenheit_farm(hass: HomeAssistant) -> Layout:
    """The mixed fleet's layout, with Home Assistant set to °F before the devices appear."""
    hass.config.units = US_CUSTOMARY_SYSTEM
    return mixed_layout()


async def command_round(hass: HomeAssistant) -> None:
    """Command every entity of the mixed fleet to the other state, as a dashboard would."""
    entities = [*(f"switch.relay_{index}" for index in range(MIXED_RELAYS)), GROUP, WRAPPER]
    for entity_id in entities:
        service = "turn_off" if hass.states.get(entity_id).state == "on" else "turn_on"
        domain = entity_id.split(".")[0]
        await hass.services.async_call(domain, service, {"entity_id": entity_id}, blocking=True)
    shown = hass.states.get(BROODER).attributes["temperature"]
    await call(
        hass, "climate.set_temperature", entity_id=BROODER, temperature=65 if shown == 72 else 71
    )


def counted(records: list[Record]) -> list[Record]:
    """The records that are commands to count: not those the device already showed."""
    return [record for record in records if not record.noop]


async def test_group_wrapper_and_fahrenheit_thermostat_figures_match_ground_truth(
    hass: HomeAssistant,
    command_events: list[Event[Any]],
    fahrenheit_farm: Layout,
    freezer: FrozenDateTimeFactory,
    hub_entry: MockConfigEntry,
) -> None:
    farm = Farm(hass)
    await async_setup_farm(hass, farm, fahrenheit_farm)
    await add_group(hass, "light", "Bed lights", ["light.bed_1", "light.bed_2"])
    await add_switch_as_x(hass, "switch.yard_relay", "light")
    assert await hass.config_entries.async_setup(hub_entry.entry_id)
    await hass.async_block_till_done()
    farm.default = Behaviour(drop_probability=0.05, delay=unreliable_delay)

    for _ in range(ROUNDS):
        start = time.time()
        await command_round(hass)
        await run_until(hass, freezer, farm, start + ROUND_S)

    records = counted(farm.records)
    latencies = [
        record.applied_at - record.received_at
        for record in records
        if record.applied_at is not None and record.applied_at - record.received_at <= TIMEOUT_S
    ]
    failed = len(records) - len(latencies)
    leaves = {record.entity_id for record in records}
    assert leaves >= LEAVES  # every kind of device was really commanded
    assert 3 < failed < 40
    assert {e.data["entity_id"] for e in command_events} <= leaves  # never the group or the wrapper
    rate = hass.states.get("sensor.farm_resilience_command_success_rate")
    assert rate.attributes["commands"] == len(records)
    assert float(rate.state) == pytest.approx(100 * len(latencies) / len(records))
    assert int(hass.states.get("sensor.farm_resilience_commands_failed").state) == failed
    p50 = float(hass.states.get("sensor.farm_resilience_command_latency_p50").state)
    p95 = float(hass.states.get("sensor.farm_resilience_command_latency_p95").state)
    assert within_histogram_bound(p50, nearest_rank(latencies, 0.50)), (p50, latencies)
    assert within_histogram_bound(p95, nearest_rank(latencies, 0.95)), (p95, latencies)
