"""The windowed statistics: quantile error bound, window expiry, storage round trip."""

from __future__ import annotations

import math
import random

import pytest

from custom_components.farm_resilience.statistics import (
    BUCKET_SECONDS,
    HISTOGRAM_MIN_S,
    HISTOGRAM_RATIO,
    WindowStatistics,
)

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
    }


def test_storage_round_trip_keeps_the_window_and_drops_what_is_older() -> None:
    statistics = WindowStatistics(window_hours=2)
    statistics.record("switch.old", "timeout", None, NOW)
    statistics.record("switch.pump", "success", 0.8, NOW + 3 * 3600)
    statistics.record("switch.pump", "timeout", None, NOW + 3 * 3600)

    loaded = WindowStatistics(window_hours=2)
    loaded.load(statistics.as_dict(), NOW + 3 * 3600)
    figures = loaded.figures(NOW + 3 * 3600)

    assert figures.commands == 2
    assert figures.success_rate == 50.0
    assert figures.latency_p50 == pytest.approx(0.8, rel=HISTOGRAM_RATIO - 1)
    assert [o.entity_id for o in loaded.worst_offenders(NOW + 3 * 3600, 10)] == ["switch.pump"]
