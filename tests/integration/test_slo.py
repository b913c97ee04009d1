"""Command success as an objective: degraded on evidence, the error budget, burn-rate alerts.

Long simulated runs in a real Home Assistant core: a fleet of relays that drop a
share of their commands (the simulator's seeded random numbers), one command every
6 s of frozen time, the hub's degraded verdict read after every command.
"""

from __future__ import annotations

import random
import statistics

import pytest
from freezegun.api import FrozenDateTimeFactory
from homeassistant.core import HomeAssistant
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_fire_time_changed_exact,
)

from custom_components.farm_resilience.const import DOMAIN

from .sim import Behaviour, Farm, Layout, relay_boards
from .support import DEGRADED, RATE, advance, call, reasons

BUDGET = "sensor.farm_resilience_error_budget_remaining"
RELAYS = 10
STEP_S = 6.0
LONG_RUN = 3000
# The simulator's seed for each fleet at 95 %, one after the other.
FLEET_SEEDS = range(1, 10)


@pytest.fixture
def layout() -> Layout:
    """Ten relay boards."""
    return relay_boards(RELAYS)


async def command(hass: HomeAssistant, freezer: FrozenDateTimeFactory, relay: int) -> None:
    """Switch a relay to its other state (never a noop) and wait until the outcome is known."""
    entity_id = f"switch.relay_{relay}"
    service = "turn_off" if hass.states.get(entity_id).state == "on" else "turn_on"
    await hass.services.async_call("switch", service, {"entity_id": entity_id}, blocking=True)
    await hass.async_block_till_done()  # the state change reaches the hub before time moves
    freezer.tick(STEP_S)  # past the 5 s timeout of a dropped command
    async_fire_time_changed_exact(hass)
    await hass.async_block_till_done()


def degraded(hass: HomeAssistant) -> bool:
    """Return whether the hub says degraded."""
    return hass.states.get(DEGRADED).state == "on"


async def test_fleet_truly_at_99_5_percent_is_flagged_in_well_under_1_percent_of_3000_commands(
    hass: HomeAssistant, farm: Farm, hub: MockConfigEntry, freezer: FrozenDateTimeFactory
) -> None:
    farm.default = Behaviour(drop_probability=0.005)
    pick = random.Random(7)
    flagged = 0
    for _ in range(LONG_RUN):
        await command(hass, freezer, pick.randrange(RELAYS))
        flagged += degraded(hass)

    dropped = sum(1 for record in farm.records if record.applied_at is None)
    assert 8 <= dropped <= 22  # about 0.5 % of 3000: the fleet meets its target
    assert flagged / LONG_RUN < 0.005, flagged


async def test_fleet_truly_at_95_percent_is_flagged_within_about_60_commands(
    hass: HomeAssistant, farm: Farm, hub: MockConfigEntry, freezer: FrozenDateTimeFactory
) -> None:
    farm.default = Behaviour(drop_probability=0.05)
    pick = random.Random(7)
    delays = []
    for seed in FLEET_SEEDS:
        farm.rng = random.Random(seed)
        await hass.services.async_call(DOMAIN, "reset_statistics", blocking=True)
        await hass.async_block_till_done()
        assert not degraded(hass)
        sent = 0
        while not degraded(hass):
            await command(hass, freezer, pick.randrange(RELAYS))
            sent += 1
            assert sent <= 400, "a fleet at 95 % was never flagged"
        delays.append(sent)
        assert reasons(hass)[0].startswith("All tracked entities:")

    assert statistics.median(delays) <= 60, delays
    assert float(hass.states.get(RATE).state) < 99


async def toggle(hass: HomeAssistant, freezer: FrozenDateTimeFactory, times: int) -> None:
    """Switch relay 0 to its other state `times` times, 10 s apart."""
    for _ in range(times):
        state = hass.states.get("switch.relay_0").state
        action = "switch.turn_off" if state == "on" else "switch.turn_on"
        await call(hass, action, entity_id="switch.relay_0")
        await advance(hass, freezer, 10.0)


async def test_error_budget_remaining_is_the_share_of_allowed_failures_left_and_may_go_negative(
    hass: HomeAssistant, farm: Farm, hub: MockConfigEntry, freezer: FrozenDateTimeFactory
) -> None:
    assert hass.states.get(BUDGET).state == "unknown"  # no command, no budget
    farm.behaviour["switch.relay_0"] = Behaviour(drop_first=1)
    await toggle(hass, freezer, 100)

    budget = hass.states.get(BUDGET)
    assert float(budget.state) == pytest.approx(0.0)  # 99 % of 100: one failure allowed, spent
    assert budget.attributes["allowed_failures"] == 1.0
    assert (budget.attributes["failed"], budget.attributes["commands"]) == (1, 100)
    assert budget.attributes["unit_of_measurement"] == "%"
    assert budget.attributes["state_class"] == "measurement"

    farm.behaviour["switch.relay_0"] = Behaviour(drop_probability=1.0)
    await toggle(hass, freezer, 2)

    budget = hass.states.get(BUDGET)
    assert float(budget.state) == pytest.approx(100 * (1 - 3 / 1.02))  # -194 %: 3x over
    assert budget.attributes["burn_rate_1h"] == round(3 / 102 / 0.01, 2)
    assert budget.attributes["burn_alerts"] == []  # 2.9x: no alert
