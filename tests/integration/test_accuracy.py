"""Reported figures against the simulator's ground truth over several hundred commands."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from freezegun.api import FrozenDateTimeFactory
from homeassistant.core import HomeAssistant
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_fire_time_changed_exact,
)

from .sim import (
    Behaviour,
    Farm,
    Layout,
    nearest_rank,
    relay_boards,
    unreliable_delay,
    within_histogram_bound,
)

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
