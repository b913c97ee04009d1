"""The relay's rolling latency p95, kept per run of readings committed together (pure logic)."""

from __future__ import annotations

from farm_agent.metrics import Histogram
from farm_agent.relay.metrics import LATENCY_BUCKETS, WINDOW_SIZE, LatencyWindow


def window() -> LatencyWindow:
    return LatencyWindow(Histogram(LATENCY_BUCKETS))


def test_the_p95_counts_every_reading_of_a_run_and_the_histogram_sees_each_one() -> None:
    latencies = window()
    latencies.observe(0.1, 95)
    latencies.observe(2.0, 5)
    assert latencies.p95_ms() == 100.0

    again = window()
    again.observe(0.1, 94)
    again.observe(2.0, 6)
    assert again.p95_ms() == 2000.0
    assert sum(again.histogram.counts) == 100


def test_the_window_keeps_about_the_last_window_size_readings() -> None:
    latencies = window()
    latencies.observe(5.0, WINDOW_SIZE)
    for _ in range(WINDOW_SIZE // 100):
        latencies.observe(0.01, 100)
    assert latencies.p95_ms() == 10.0
