"""The rules that judge command success on evidence, as pure logic over many simulated fleets.

test_slo.py runs one fleet of each kind in a real Home Assistant core; here the
same rules (the exact binomial test, the burn-rate alerts, the entity ranking)
judge hundreds of fleets, which shows the goals hold for fleets in general and
not only for the seeds of those runs.
"""

from __future__ import annotations

import random
import statistics
from collections import deque

import pytest

from custom_components.farm_resilience.burn import BurnWindows, WindowCounts, burn_rate, firing
from custom_components.farm_resilience.evidence import (
    ENTITY_CONFIDENCE,
    FLEET_CONFIDENCE,
    below_target,
)
from custom_components.farm_resilience.slo import command_slo
from custom_components.farm_resilience.statistics import WindowFigures, WindowStatistics

from .sim import shown_below_target

NOW = 1_800_000_000.0
TARGET = 99.0
MIN_SAMPLES = 20


@pytest.mark.parametrize("target", [99.0, 99.5, 95.0, 90.0])
def test_exact_test_agrees_with_the_binomial_tail_in_fractions(target: float) -> None:
    disagreements = [
        (n, k, confidence)
        for n in range(1, 130, 3)
        for k in range(n + 1)
        for confidence in (FLEET_CONFIDENCE, ENTITY_CONFIDENCE)
        if below_target(n, k, target, confidence) != shown_below_target(n, k, target, confidence)
    ]

    assert disagreements == []


@pytest.mark.parametrize(
    ("commands", "failed", "shown"),
    [
        (20, 1, False),  # 95 %, but one failure in 20 happens at 99 % too (18 % of the time)
        (20, 2, True),  # two in 20 happen at 99 % less than 2 % of the time
        (100, 3, False),
        (100, 4, True),
        (1000, 15, False),  # 98.5 %: still within chance at 99 %
        (1000, 16, True),
        (50, 0, False),
    ],
)
def test_a_rate_below_target_counts_only_with_evidence(
    commands: int, failed: int, shown: bool
) -> None:
    assert below_target(commands, failed, TARGET, FLEET_CONFIDENCE) is shown


def test_with_a_target_of_100_percent_any_failure_misses_it() -> None:
    assert below_target(1000, 1, 100.0, FLEET_CONFIDENCE)
    assert not below_target(1000, 0, 100.0, FLEET_CONFIDENCE)


def test_burn_rate_is_the_failure_rate_over_the_budgeted_one() -> None:
    assert burn_rate(WindowCounts(200, 30), 99.0) == pytest.approx(15.0)
    assert burn_rate(WindowCounts(0, 0), 99.0) is None


def test_a_fast_burn_fires_only_with_both_windows_above_14_4x_and_evidence() -> None:
    counts = {
        "5m": WindowCounts(10, 2),
        "30m": WindowCounts(60, 2),
        "1h": WindowCounts(100, 16),
        "6h": WindowCounts(600, 16),
    }
    assert [fired.alert.name for fired in firing(counts, TARGET, MIN_SAMPLES)] == ["fast"]

    quiet = {**counts, "5m": WindowCounts(10, 1)}  # 10x over 5 min: over already
    assert firing(quiet, TARGET, MIN_SAMPLES) == []
    few = {name: WindowCounts(5, 1) for name in counts}  # 20x, but one failure in five
    assert firing(few, TARGET, MIN_SAMPLES) == []


def test_burn_windows_drop_minutes_as_they_leave_each_window() -> None:
    windows = BurnWindows()
    windows.record(True, NOW)
    windows.record(False, NOW + 10 * 60)

    counts = windows.counts(NOW + 10 * 60)

    assert counts["5m"] == WindowCounts(1, 0)
    assert counts["30m"] == counts["1h"] == counts["6h"] == WindowCounts(2, 1)
    assert windows.counts(NOW + 7 * 3600)["6h"] == WindowCounts(0, 0)


class Fleet:
    """A fleet of relays judged after every command, as the hub judges it."""

    def __init__(self, seed: int, failure_rate: float, relays: int = 10) -> None:
        """A fleet whose commands fail at `failure_rate`, one every 15 s."""
        self.rng = random.Random(seed)
        self.failure_rate = failure_rate
        self.relays = relays
        self.window = WindowStatistics(4, min_samples=MIN_SAMPLES, success_target=TARGET)
        self.burn = BurnWindows()
        self.sent: deque[tuple[float, bool]] = deque()
        self.failures = 0
        self.now = NOW

    def command(self) -> bool:
        """Send one command; return whether the fleet is judged degraded afterwards."""
        self.now += 15.0
        failed = self.rng.random() < self.failure_rate
        relay = f"switch.relay_{self.rng.randrange(self.relays)}"
        self.window.record(relay, "timeout" if failed else "success", None, self.now)
        self.burn.record(failed, self.now)
        self.sent.append((self.now, failed))
        self.failures += failed
        while self.sent[0][0] <= self.now - self.window.window_s:
            self.failures -= self.sent.popleft()[1]
        figures = WindowFigures({}, len(self.sent), self.failures, None, None, None)
        slo = command_slo(
            figures, self.burn.counts(self.now), target_pct=TARGET, min_samples=MIN_SAMPLES
        )
        return slo.below_target or bool(slo.alerts) or bool(self.window.below_target(self.now))


def test_fleets_truly_at_99_5_percent_are_flagged_in_well_under_1_percent_of_evaluations() -> None:
    shares = []
    for seed in range(20):
        fleet = Fleet(seed, failure_rate=0.005)
        shares.append(sum(fleet.command() for _ in range(3000)) / 3000)

    assert statistics.mean(shares) < 0.005, shares


def test_fleets_truly_at_95_percent_are_flagged_within_about_60_commands() -> None:
    delays = []
    for seed in range(200):
        fleet = Fleet(seed, failure_rate=0.05)
        sent = 1
        while not fleet.command():
            sent += 1
        delays.append(sent)

    assert statistics.median(delays) <= 60, sorted(delays)
