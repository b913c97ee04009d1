"""A thousand tracked entities: exact figures under drops and outages, and work that does not grow.

The work per event is counted in steps (`work.WorkCounter`), as the number of
tracked entities, pending commands, history or monitored sensors grows.

Ground truth comes from the simulator's records (when each device received and
applied a command) and from when the test itself took devices off the
network; the integration's figures must match it exactly.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import pytest
from freezegun.api import FrozenDateTimeFactory
from homeassistant.core import Event, HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_capture_events

from custom_components.farm_resilience.const import (
    DEFAULT_OPTIONS,
    DOMAIN,
    EVENT_COMMAND,
    STORAGE_SAVE_DELAY,
)

from .sim import (
    Behaviour,
    Farm,
    Layout,
    Record,
    async_add_to_farm,
    nearest_rank,
    relay_boards,
    shown_below_target,
    unreliable_delay,
    within_histogram_bound,
)
from .support import DEGRADED, FAILED, RATE, STALE, UNAVAILABLE_DEVICES, WorkCounter, advance, call

RELAYS = 1000
TIMEOUT_S = 5.0
OUTAGE_ALERT_S = 60.0
# Not a divisor of the timeout: no answer lands exactly on a deadline.
STEP_S = 0.3
DEAD = range(900, 950)  # drop off one second in and stay down: outages
BLIPS = range(950, 960)  # drop off for 30 s, then come back: no outage
FLAKY = "switch.relay_7"
FLAKY_COMMANDS = 40
SILENT = Behaviour(drop_probability=1.0)
# Warnings nobody can avoid here: HA's notice about custom integrations, and asyncio
# timing a callback across a jump of the frozen clock.
BENIGN_WARNINGS = ("homeassistant.loader", "asyncio")

P50 = "sensor.farm_resilience_command_latency_p50"
P95 = "sensor.farm_resilience_command_latency_p95"


def relay(index: int) -> str:
    """Return the entity id of a relay."""
    return f"switch.relay_{index}"


@pytest.fixture
def layout() -> Layout:
    """A farm of a thousand relay boards."""
    return relay_boards(RELAYS)


@dataclass(slots=True)
class Command:
    """One command as the test sent it, and what the device made of it."""

    entity_id: str
    called_at: float
    record: Record | None  # None: Home Assistant did not pass it on (entity unavailable)


@dataclass(slots=True)
class Ledger:
    """Every command sent and every time the test took a device off the network."""

    hass: HomeAssistant
    freezer: FrozenDateTimeFactory
    farm: Farm
    commands: list[Command] = field(default_factory=list)
    went_down: dict[str, float] = field(default_factory=dict)

    async def command(self, entity_id: str) -> None:
        """Switch a relay to the other state (never a noop), as a dashboard would."""
        state = self.hass.states.get(entity_id)
        assert state is not None
        service = "turn_off" if state.state == "on" else "turn_on"
        received = len(self.farm.records)
        called_at = time.time()
        await self.hass.services.async_call(
            "switch", service, {"entity_id": entity_id}, blocking=True
        )
        record = self.farm.records[received] if len(self.farm.records) > received else None
        assert (record is None) == (state.state == "unavailable")
        self.commands.append(Command(entity_id, called_at, record))

    def take_down(self, entity_id: str) -> None:
        """Take a device off the network."""
        self.went_down[entity_id] = time.time()
        self.farm.entities[entity_id].set_available(False)

    def bring_back(self, entity_id: str) -> None:
        """Put a device back on the network, answering commands as the others do."""
        self.farm.behaviour.pop(entity_id, None)
        self.farm.entities[entity_id].set_available(True)

    def truth(self, command: Command) -> tuple[str, float | None]:
        """Return how a command really ended: outcome and latency."""
        if command.record is None:
            return "unavailable", None
        applied = command.record.applied_at
        down = self.went_down.get(command.entity_id)
        if (
            down is not None
            and command.called_at <= down < command.called_at + TIMEOUT_S
            and (applied is None or applied > down)
        ):
            return "unavailable", None
        if applied is not None and applied - command.called_at <= TIMEOUT_S:
            return "success", applied - command.called_at
        return "timeout", None


def expected_reasons(per_entity: dict[str, list[int]], failed: int, commands: int) -> list[str]:
    """Return the degraded reasons the ground truth calls for, in the hub's order."""
    assert shown_below_target(commands, failed, 99, 0.95)
    reasons = [
        f"All tracked entities: {failed} of {commands} commands failed "
        f"({100 * (commands - failed) / commands:.1f} % < 99 %)"
    ]
    below = sorted(
        (100 * (total - bad) / total, -bad, entity_id, total, bad)
        for entity_id, (total, bad) in per_entity.items()
        if total >= DEFAULT_OPTIONS["min_samples"] and shown_below_target(total, bad, 99, 0.999)
    )
    reasons += [
        f"{entity_id}: {bad} of {total} commands failed ({rate:.1f} % < 99 %)"
        for rate, _, entity_id, total, bad in below
    ]
    reasons += [
        f"Relay {index}: down for more than 60 s (all 1 tracked entities unavailable)"
        for index in sorted(DEAD, key=str)
    ]
    # The attribute reaches the recorder: 20 entries at most, the last saying how many more.
    return [*reasons[:19], f"and {len(reasons) - 19} more"]


def loud_records(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Return every warning, error or exception logged, except the benign ones."""
    return [
        f"{record.name}: {record.getMessage()}"
        for record in caplog.records
        if (record.levelno >= logging.WARNING and not record.name.startswith(BENIGN_WARNINGS))
        or record.levelno >= logging.ERROR
        or record.exc_info
    ]


async def test_a_thousand_tracked_entities_with_drops_and_outages_give_exactly_the_true_figures(
    hass: HomeAssistant,
    command_events: list[Event[Any]],
    farm: Farm,
    hub: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    ledger = Ledger(hass, freezer, farm)
    flaky_done = 0

    def flaky_idle() -> bool:
        return sum(1 for e in command_events if e.data["entity_id"] == FLAKY) == flaky_done

    farm.default = Behaviour(drop_probability=0.05, delay=unreliable_delay)
    farm.behaviour[FLAKY] = Behaviour(drop_probability=0.25, delay=lambda rng: 0.2)
    for index in (*DEAD, *BLIPS):
        farm.behaviour[relay(index)] = SILENT  # a device about to drop off answers nothing
    others = [relay(index) for index in range(RELAYS) if relay(index) != FLAKY]
    start = time.time()
    rounds = {
        0.0: others,  # every relay
        9.9: others[::2],  # half of them, some of which are down now
        35.1: [relay(index) for index in BLIPS],  # the ones that came back
    }

    while (now := time.time() - start) < OUTAGE_ALERT_S + 10 or (
        flaky_done < FLAKY_COMMANDS or not flaky_idle()
    ):
        for at in [at for at in rounds if at <= now]:
            for entity_id in rounds.pop(at):
                await ledger.command(entity_id)
        if flaky_done < FLAKY_COMMANDS and flaky_idle():
            await ledger.command(FLAKY)
            flaky_done += 1
        if 1.0 <= now < 1.0 + STEP_S:
            for index in (*DEAD, *BLIPS):
                ledger.take_down(relay(index))
        if 31.0 <= now < 31.0 + STEP_S:
            for index in BLIPS:
                ledger.bring_back(relay(index))
        await advance(hass, freezer, STEP_S)
    await advance(hass, freezer, TIMEOUT_S + 2)  # late answers arrive, and change nothing

    truth = [ledger.truth(command) for command in ledger.commands]
    successes = [latency for outcome, latency in truth if outcome == "success"]
    per_entity: dict[str, list[int]] = {}
    for command, (outcome, _) in zip(ledger.commands, truth, strict=True):
        figures = per_entity.setdefault(command.entity_id, [0, 0])
        figures[0] += 1
        figures[1] += outcome != "success"
    commands = len(truth)
    failed = commands - len(successes)
    timeouts = sum(1 for outcome, _ in truth if outcome == "timeout")
    unavailable = sum(1 for outcome, _ in truth if outcome == "unavailable")
    # The scenario did what it meant to: every kind of failure, in numbers.
    assert commands == 999 + 500 + len(BLIPS) + FLAKY_COMMANDS
    assert timeouts > 50
    assert unavailable == len(DEAD) + len(DEAD) // 2 + len(BLIPS) + len(BLIPS) // 2
    assert per_entity[FLAKY][1] >= 5

    assert sorted(e.data["outcome"] for e in command_events) == sorted(
        outcome for outcome, _ in truth
    )
    rate = hass.states.get(RATE)
    assert rate.attributes["commands"] == commands
    assert float(rate.state) == pytest.approx(100 * len(successes) / commands, abs=1e-9)
    assert int(hass.states.get(FAILED).state) == failed
    assert hass.states.get(FAILED).attributes["timeout"] == timeouts
    assert hass.states.get(FAILED).attributes["unavailable"] == unavailable
    p50, p95 = float(hass.states.get(P50).state), float(hass.states.get(P95).state)
    assert within_histogram_bound(p50, nearest_rank(successes, 0.50))
    assert within_histogram_bound(p95, nearest_rank(successes, 0.95))
    worst = sorted(
        (100 * (total - bad) / total, -bad, entity_id, total, bad)
        for entity_id, (total, bad) in per_entity.items()
        if bad
    )[:10]
    assert hass.states.get(FAILED).attributes["worst_offenders"] == [
        {"entity_id": e, "commands": total, "failed": bad, "success_rate": round(rate, 2)}
        for rate, _, e, total, bad in worst
    ]
    devices = hass.states.get(UNAVAILABLE_DEVICES)
    assert int(devices.state) == len(DEAD)
    assert devices.attributes["devices"] == sorted(f"Relay {index}" for index in DEAD)
    assert hass.states.get(DEGRADED).state == "on"
    assert hass.states.get(DEGRADED).attributes["reasons"] == expected_reasons(
        per_entity, failed, commands
    )
    assert loud_records(caplog) == []


async def turn_on(hass: HomeAssistant, *entity_ids: str) -> None:
    """Switch relays on, one call each."""
    for entity_id in entity_ids:
        await call(hass, "switch.turn_on", entity_id=entity_id)


async def background(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    farm: Farm,
    *,
    failing: range,
    answering: range,
    silent: range,
) -> None:
    """Fill the window: relays that fail once, relays that answer, commands left pending."""
    for index in failing:  # off the network for a moment, commanded meanwhile
        farm.entities[relay(index)].set_available(False)
    await turn_on(hass, *(relay(index) for index in failing))
    for index in failing:
        farm.entities[relay(index)].set_available(True)
    await turn_on(hass, *(relay(index) for index in answering))
    for index in silent:
        farm.behaviour[relay(index)] = SILENT
    await turn_on(hass, *(relay(index) for index in silent))
    await advance(hass, freezer, STEP_S)


async def probe(
    hass: HomeAssistant, freezer: FrozenDateTimeFactory, farm: Farm, first: int
) -> WorkCounter:
    """Count the integration's work for one of each event, on relays `first`..`first + 3`."""
    command_events = async_capture_events(hass, EVENT_COMMAND)
    answering, dropping, leaving, dying = (relay(first + offset) for offset in range(4))
    farm.behaviour[answering] = Behaviour(delay=lambda rng: 0.5)
    farm.behaviour[dropping] = SILENT
    farm.behaviour[leaving] = SILENT
    work = WorkCounter()
    # The window is saved at most once a minute (all of it, by design): let a save
    # that is due happen before counting, and keep the long step clear of the next.
    await advance(hass, freezer, STORAGE_SAVE_DELAY)
    with work:  # a device down past outage_alert that comes back
        farm.entities[dying].set_available(False)
        await advance(hass, freezer, OUTAGE_ALERT_S + 1)
        farm.entities[dying].set_available(True)
        await advance(hass, freezer, STEP_S)
    with work:  # a command that succeeds
        await turn_on(hass, answering)
        await advance(hass, freezer, 0.5)
    with work:  # send_command whose device never answers: a timeout, found by the sweep
        sending = asyncio.create_task(
            hass.services.async_call(
                DOMAIN,
                "send_command",
                {"entity_id": dropping, "action": "switch.turn_on", "timeout": 5, "retries": 0},
                blocking=True,
            )
        )
        await advance(hass, freezer, 5.0)
    with pytest.raises(HomeAssistantError):
        await sending
    with work:  # a device that drops off while its command is pending
        await turn_on(hass, leaving)
        farm.entities[leaving].set_available(False)
        await advance(hass, freezer, STEP_S)
        farm.entities[leaving].set_available(True)
        await advance(hass, freezer, STEP_S)
    with work:  # a device switched by hand: a state change with no command
        farm.entities[answering].switch_by_hand(on=False)
        await advance(hass, freezer, STEP_S)
    assert [(e.data["entity_id"], e.data["outcome"]) for e in command_events] == [
        (answering, "success"),
        (dropping, "timeout"),
        (leaving, "unavailable"),
    ]
    return work


@pytest.mark.parametrize("layout", [relay_boards(100)], ids=["100_relays"])
@pytest.mark.parametrize("options", [{**DEFAULT_OPTIONS, "command_timeout": 600}])
async def test_work_per_event_does_not_grow_with_tracked_entities_pending_commands_or_history(
    hass: HomeAssistant,
    farm: Farm,
    hub: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    for index in range(80, 85):  # five devices down for good: the same outages throughout
        farm.entities[relay(index)].set_available(False)
    await background(
        hass, freezer, farm, failing=range(12), answering=range(12, 60), silent=range(60, 70)
    )
    await advance(hass, freezer, OUTAGE_ALERT_S + 1)
    small = await probe(hass, freezer, farm, first=96)

    await async_add_to_farm(hass, farm, relay_boards(RELAYS, start=100))
    await background(
        hass,
        freezer,
        farm,
        failing=range(100, 200),
        answering=range(200, 500),
        silent=range(500, 996),
    )
    large = await probe(hass, freezer, farm, first=996)

    tracker = hub.runtime_data.tracker
    assert len(tracker.followed) == RELAYS
    assert len(tracker.pending) == 10 + 496
    # 10 x the entities, 50 x the pending commands, 8 x the history: the same work per event.
    assert large.steps <= 1.1 * small.steps, (small.steps, large.steps, large.top(), small.top())
    assert loud_records(caplog) == []


SENSORS = 2000
STALE_AFTER_S = 900.0


async def stale_sensors_report(
    hass: HomeAssistant, freezer: FrozenDateTimeFactory, sensors: list[str]
) -> WorkCounter:
    """Let every monitored sensor go stale, then count the work of ten of them reporting.

    Each reports twice: the second report also learns an interval of its rhythm.
    """
    await advance(hass, freezer, STALE_AFTER_S + 1)
    assert int(hass.states.get(STALE).state) == len(sensors)
    work = WorkCounter()
    with work:
        for sensor in sensors[:10]:
            hass.states.async_set(sensor, "21.5")
            await advance(hass, freezer, STEP_S)
            hass.states.async_set(sensor, "21.6")
            await advance(hass, freezer, STEP_S)
    assert int(hass.states.get(STALE).state) == len(sensors) - 10
    return work


@pytest.mark.parametrize(
    "options", [{**DEFAULT_OPTIONS, "stale_after": STALE_AFTER_S}], ids=["stale_after_900"]
)
async def test_work_per_report_does_not_grow_with_monitored_or_stale_sensors(
    hass: HomeAssistant,
    hub_entry: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    sensors = [f"sensor.soil_probe_{index}" for index in range(SENSORS)]
    for sensor in sensors:
        hass.states.async_set(sensor, "20.0")
    hass.config_entries.async_update_entry(
        hub_entry, options={**hub_entry.options, "monitored_sensors": sensors[:100]}
    )
    assert await hass.config_entries.async_setup(hub_entry.entry_id)
    await hass.async_block_till_done()
    small = await stale_sensors_report(hass, freezer, sensors[:100])

    for sensor in sensors:  # all of them report, then fall silent
        hass.states.async_set(sensor, "20.0")
    hass.config_entries.async_update_entry(
        hub_entry, options={**hub_entry.options, "monitored_sensors": sensors}
    )
    await hass.async_block_till_done()  # the hub reloads with 20 x the sensors
    large = await stale_sensors_report(hass, freezer, sensors)

    # 20 x the monitored and the stale sensors: the same work per report.
    assert large.steps <= 1.1 * small.steps, (small.steps, large.steps, large.top(), small.top())
    assert loud_records(caplog) == []
