"""The windowed statistics: quantile error bound, window expiry, storage round trip."""

from __future__ import annotations

import math
import random

import pytest

from custom_components.farm_resilience.ranking import EntityFigures
from custom_components.farm_resilience.statistics import (
    BUCKET_SECONDS,
    HISTOGRAM_MIN_S,
    HISTOGRAM_RATIO,
    WindowStatistics,
)
from custom_components.farm_resilience.storage import parse

NOW = 1_800_000_000.0


def nearest_rank(values: list[float], q: float) -> float:
    """Return the ceil(q * n)-th smallest value."""
    return sorted(values)[math.ceil(q * len(values)) - 1]


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("q", [0.5, 0.95])
def test_latency_quantiles_are_within_the_stated_error_bound(seed: int, q: float) -> None:
    rng = random.Random(seed)
    statistics = WindowStatistics(window_hours=24)
    latencies = [rng.lognormvariate(math.log(0.5), 1.2) for _ in range(2000)]
    for latency in latencies:
        statistics.record("switch.pump", "success", latency, NOW)

    figures = statistics.figures(NOW)
    estimate = {0.5: figures.latency_p50, 0.95: figures.latency_p95}[q]
    truth = nearest_rank(latencies, q)

    assert estimate is not None
    assert abs(estimate - truth) <= max((HISTOGRAM_RATIO - 1) * truth, HISTOGRAM_MIN_S)


def test_outcomes_leave_the_window_with_their_bucket() -> None:
    statistics = WindowStatistics(window_hours=1)
    statistics.record("switch.pump", "timeout", None, NOW)
    statistics.record("switch.pump", "success", 1.0, NOW + 1800)

    assert statistics.figures(NOW + 1800).commands == 2
    later = NOW + 3600 + BUCKET_SECONDS
    figures = statistics.figures(later)

    assert figures.commands == 1
    assert figures.failed == 0
    assert figures.success_rate == 100.0
    assert statistics.worst_offenders(later, 10) == []


def test_superseded_and_noop_are_kept_apart_from_the_success_rate() -> None:
    statistics = WindowStatistics(window_hours=24)
    for outcome in ("success", "superseded", "noop", "unavailable"):
        statistics.record("valve.field", outcome, 0.5 if outcome == "success" else None, NOW)

    figures = statistics.figures(NOW)

    assert figures.commands == 2
    assert figures.success_rate == 50.0
    assert figures.counts == {
        "success": 1,
        "timeout": 0,
        "unavailable": 1,
        "superseded": 1,
        "noop": 1,
        "bounced": 0,
    }


def test_storage_round_trip_keeps_the_window_and_drops_what_is_older() -> None:
    statistics = WindowStatistics(window_hours=2)
    statistics.record("switch.old", "timeout", None, NOW)
    statistics.record("switch.pump", "success", 0.8, NOW + 3 * 3600)
    statistics.record("switch.pump", "timeout", None, NOW + 3 * 3600)

    loaded = WindowStatistics(window_hours=2)
    stored = parse(statistics.as_dict())
    loaded.load(stored.buckets, stored.spans, NOW + 3 * 3600)
    figures = loaded.figures(NOW + 3 * 3600)

    assert figures.commands == 2
    assert figures.success_rate == 50.0
    assert figures.latency_p50 == pytest.approx(0.8, rel=HISTOGRAM_RATIO - 1)
    assert [o.entity_id for o in loaded.worst_offenders(NOW + 3 * 3600, 10)] == ["switch.pump"]


def figures_of(entities: list[EntityFigures]) -> list[tuple[str, int, int]]:
    """Return (entity_id, commands, failed) of entity figures."""
    return [(entity.entity_id, entity.commands, entity.failed) for entity in entities]


def test_every_entity_shown_below_target_is_named_not_only_the_ten_worst() -> None:
    statistics = WindowStatistics(window_hours=24, min_samples=20, success_target=99)
    for index in range(12):  # twelve relays that failed their only command: 0 %
        statistics.record(f"switch.relay_{index}", "timeout", None, NOW)
    for attempt in range(40):  # a pump that fails one command in four: 75 %, with 40 samples
        statistics.record("switch.pump", "success" if attempt % 4 else "timeout", 0.5, NOW)
    for attempt in range(40):  # a valve at 90 %: 4 failures in 40 are evidence at 99.9 %
        statistics.record("valve.field", "timeout" if attempt < 4 else "success", 0.5, NOW)
    for attempt in range(40):  # a fence at 92.5 %: 3 in 40 happen at 99 % too (0.8 %)
        statistics.record("switch.fence", "timeout" if attempt < 3 else "success", 0.5, NOW)
    statistics.record("fan.barn", "timeout", None, NOW)  # too few commands to judge

    worst = statistics.worst_offenders(NOW, 10)

    assert [entity.success_rate for entity in worst] == [0.0] * 10
    assert "switch.pump" not in [entity.entity_id for entity in worst]
    assert figures_of(statistics.below_target(NOW)) == [
        ("switch.pump", 40, 10),
        ("valve.field", 40, 4),
    ]


def test_entity_figures_follow_a_span_without_failures_leaving_the_window() -> None:
    statistics = WindowStatistics(window_hours=12, min_samples=5, success_target=99)
    for _ in range(10):
        statistics.record("switch.pump", "success", 0.5, NOW)
    for _ in range(5):
        statistics.record("switch.pump", "timeout", None, NOW + 6 * 3600)
    assert figures_of(statistics.worst_offenders(NOW + 6 * 3600, 10)) == [("switch.pump", 15, 5)]

    later = NOW + 12 * 3600 + 3600  # the successes' span has left the window

    assert figures_of(statistics.worst_offenders(later, 10)) == [("switch.pump", 5, 5)]
    assert figures_of(statistics.below_target(later)) == [("switch.pump", 5, 5)]
    statistics.reset()
    assert statistics.worst_offenders(later, 10) == statistics.below_target(later) == []
