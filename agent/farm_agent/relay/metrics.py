"""The relay's figures: metrics for /metrics, and the totals the health report shows.

Each stage records through one method here, which moves the Prometheus figure and the
total the relay's snapshot reads together (per batch, never per reading).
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass

from farm_agent.database import Route
from farm_agent.metrics import Histogram, Metrics

# From publish to commit: most readings take milliseconds, a backlog drains in minutes.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800)
# The health's e2e p95 covers the readings of the last few minutes, not the whole uptime.
WINDOW_S = 300.0
WINDOW_SIZE = 10_000
P95_REFRESH_S = 1.0


@dataclass(frozen=True, slots=True)
class RelaySnapshot:
    """The relay at one moment: its route, its fallbacks and its counters."""

    route: Route
    fallbacks_total: int
    received_total: int
    relayed_total: int
    dead_lettered_total: int
    spool_depth: int
    e2e_latency_p95_ms: float | None
    spool_full: bool
    spool_disk_full: bool = False


class LatencyWindow:
    """The relay latency histogram, plus the last readings' latencies for a rolling p95.

    Readings committed together waited alike: the window keeps one entry per such run
    (when, how long, how many), not one per reading: at 1,000 readings a second, ten
    thousand entries were a megabyte of the agent's memory and a tuple per reading.
    """

    def __init__(self, histogram: Histogram) -> None:
        self.histogram = histogram
        # (monotonic time, seconds waited, readings), oldest first; about WINDOW_SIZE readings.
        self._runs: deque[tuple[float, float, int]] = deque()
        self._readings = 0
        self._p95: tuple[float, float | None] = (-math.inf, None)

    def observe(self, seconds: float, count: int = 1) -> None:
        """`count` readings relayed now, each after `seconds`."""
        self.histogram.observe(seconds, count)
        self._runs.append((time.monotonic(), seconds, count))
        self._readings += count
        while self._readings - self._runs[0][2] >= WINDOW_SIZE:
            self._readings -= self._runs.popleft()[2]

    def p95_ms(self) -> float | None:
        """p95 over the last WINDOW_S seconds; None when no reading was relayed in that time."""
        now = time.monotonic()
        computed_at, p95 = self._p95
        # Sorting the window is cheap, but not twice a second on a Pi; the first
        # readings after a quiet spell are shown at once, though.
        fresh = p95 is None and self._runs and self._runs[-1][0] > computed_at
        if now - computed_at < P95_REFRESH_S and not fresh:
            return p95
        recent = sorted(
            (seconds, count) for at, seconds, count in self._runs if at >= now - WINDOW_S
        )
        p95 = _nearest_rank(recent, 0.95) * 1000 if recent else None
        self._p95 = (now, p95)
        return p95


def _nearest_rank(ordered: list[tuple[float, int]], share: float) -> float:
    """The value at the nearest rank of `share` among (value, how many times) in value order."""
    rank = math.ceil(share * sum(count for _, count in ordered))
    seen = 0
    for value, count in ordered:
        seen += count
        if seen >= rank:
            return value
    return ordered[-1][0]


class RelayMetrics:
    """Counters and gauges of one agent, in its `Metrics` (several agents run per test)."""

    def __init__(self, metrics: Metrics | None = None) -> None:
        self.metrics = metrics = metrics or Metrics()
        self.received_total = 0
        self.relayed_total = 0
        self.dead_lettered_total = 0
        self.received = metrics.counter(
            "farm_agent_readings_received", "Readings committed to the spool"
        )
        self.relayed = metrics.counter(
            "farm_agent_readings_relayed", "Readings committed to the queue"
        )
        self.dead_lettered = metrics.counter(
            "farm_agent_readings_dead_lettered", "Readings sent to the dead-letter queue"
        )
        self.redeliveries = metrics.counter(
            "farm_agent_mqtt_redeliveries",
            "Broker redeliveries (DUP) of readings already on disk, not stored twice",
        )
        self.duplicates_suppressed = metrics.counter(
            "farm_agent_duplicates_suppressed",
            "Readings resent after a crash that their key space's mark showed already queued",
        )
        self.batches_failed = metrics.counter(
            "farm_agent_batches_failed", "Batches that failed and will be retried"
        )
        self.spool_depth = metrics.gauge(
            "farm_agent_spool_depth", "Readings on local disk waiting for the queue"
        )
        self.backpressure = metrics.gauge(
            "farm_agent_spool_backpressure",
            "1 while the spool is full and MQTT messages are left unacknowledged",
        )
        self.spool_disk_full = metrics.gauge(
            "farm_agent_spool_disk_full",
            "1 while the spool's disk has no room: MQTT messages are left unacknowledged",
        )
        self.route = metrics.labelled_gauge(
            "farm_agent_backend_route",
            "1 for the route the relay uses now (pooler, direct or none)",
            ["route"],
        )
        self.fallbacks = metrics.counter(
            "farm_agent_backend_fallbacks", "Switches from the pooler to the direct connection"
        )
        self.relay_latency = LatencyWindow(
            metrics.histogram(
                "farm_agent_relay_latency_seconds",
                "Time from MQTT arrival to queue commit",
                LATENCY_BUCKETS,
            )
        )
        self.set_route(Route.NONE)

    def set_route(self, active: Route) -> None:
        for route in Route:
            self.route.labels(route).set(1 if route == active else 0)

    def spooled(self, stored: int, redelivered: int, depth: int) -> None:
        """Readings committed to the spool (`redelivered` more recognised as redeliveries)."""
        self.received.inc(stored)
        self.redeliveries.inc(redelivered)
        self.spool_depth.set(depth)
        self.received_total += stored

    def forwarded(self, relayed: int, dead_lettered: int, duplicates: int, depth: int) -> None:
        """A batch the queue committed and the spool let go."""
        self.relayed.inc(relayed)
        self.dead_lettered.inc(dead_lettered)
        self.duplicates_suppressed.inc(duplicates)
        self.spool_depth.set(depth)
        self.relayed_total += relayed
        self.dead_lettered_total += dead_lettered

    def spool_blocked(self, full: bool, disk_full: bool) -> None:
        """Whether ingest waits for room in the spool, or for room on its disk."""
        self.backpressure.set(1 if full or disk_full else 0)
        self.spool_disk_full.set(1 if disk_full else 0)
