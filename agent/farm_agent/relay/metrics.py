"""The relay's figures, kept once: Prometheus metrics that the health report reads too."""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

ROUTES = ("pooler", "direct", "none")
# From publish to commit: most readings take milliseconds, a backlog drains in minutes.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800)
# Probes answer in milliseconds when healthy; the top buckets catch a struggling backend.
PROBE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
# The health's e2e p95 covers the readings of the last few minutes, not the whole uptime.
WINDOW_S = 300.0
WINDOW_SIZE = 10_000
P95_REFRESH_S = 1.0
STATUSES = ("ok", "degraded", "down")


@dataclass(frozen=True, slots=True)
class RelayFigures:
    """The relay's counters at one moment, as the health report shows them."""

    received_total: int
    relayed_total: int
    dead_lettered_total: int
    spool_depth: int
    e2e_latency_p95_ms: float | None
    spool_full: bool
    spool_disk_full: bool = False


class LatencyWindow:
    """The relay latency histogram, plus the last readings' latencies for a rolling p95."""

    def __init__(self, histogram: Histogram) -> None:
        self.histogram = histogram
        self._samples: deque[tuple[float, float]] = deque(maxlen=WINDOW_SIZE)
        self._p95: tuple[float, float | None] = (-math.inf, None)

    def observe(self, seconds: float) -> None:
        self.histogram.observe(seconds)
        self._samples.append((time.monotonic(), seconds))

    def p95_ms(self) -> float | None:
        """p95 over the last WINDOW_S seconds; None when no reading was relayed in that time."""
        now = time.monotonic()
        computed_at, p95 = self._p95
        # Sorting up to WINDOW_SIZE samples is cheap, but not twice a second on a Pi;
        # the first readings after a quiet spell are shown at once, though.
        fresh = p95 is None and self._samples and self._samples[-1][0] > computed_at
        if now - computed_at < P95_REFRESH_S and not fresh:
            return p95
        recent = sorted(seconds for at, seconds in self._samples if at >= now - WINDOW_S)
        p95 = recent[math.ceil(0.95 * len(recent)) - 1] * 1000 if recent else None
        self._p95 = (now, p95)
        return p95


class RelayMetrics:
    """Counters and gauges of one agent, in a registry of its own (several agents per test)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        registry = self.registry
        self.received = Counter(
            "farm_agent_readings_received", "Readings committed to the spool", registry=registry
        )
        self.relayed = Counter(
            "farm_agent_readings_relayed", "Readings committed to the queue", registry=registry
        )
        self.dead_lettered = Counter(
            "farm_agent_readings_dead_lettered",
            "Readings sent to the dead-letter queue",
            registry=registry,
        )
        self.redeliveries = Counter(
            "farm_agent_mqtt_redeliveries",
            "Broker redeliveries (DUP) of readings already on disk, not stored twice",
            registry=registry,
        )
        self.duplicates_suppressed = Counter(
            "farm_agent_duplicates_suppressed",
            "Readings the ledger showed were already in the queue (resent after a crash)",
            registry=registry,
        )
        self.batches_failed = Counter(
            "farm_agent_batches_failed",
            "Batches that failed and will be retried",
            registry=registry,
        )
        self.spool_depth = Gauge(
            "farm_agent_spool_depth",
            "Readings on local disk waiting for the queue",
            registry=registry,
        )
        self.backpressure = Gauge(
            "farm_agent_spool_backpressure",
            "1 while the spool is full and MQTT messages are left unacknowledged",
            registry=registry,
        )
        self.spool_disk_full = Gauge(
            "farm_agent_spool_disk_full",
            "1 while the spool's disk has no room: MQTT messages are left unacknowledged",
            registry=registry,
        )
        self.route = Gauge(
            "farm_agent_backend_route",
            "1 for the route the relay uses now (pooler, direct or none)",
            ["route"],
            registry=registry,
        )
        self.fallbacks = Counter(
            "farm_agent_backend_fallbacks",
            "Switches from the pooler to the direct connection",
            registry=registry,
        )
        self.relay_latency = LatencyWindow(
            Histogram(
                "farm_agent_relay_latency_seconds",
                "Time from MQTT arrival to queue commit",
                buckets=LATENCY_BUCKETS,
                registry=registry,
            )
        )
        self.set_route("none")

    def set_route(self, active: str) -> None:
        for route in ROUTES:
            self.route.labels(route=route).set(1 if route == active else 0)

    def figures(self) -> RelayFigures:
        """The counters as the health report shows them."""
        value = self.registry.get_sample_value
        return RelayFigures(
            received_total=int(value("farm_agent_readings_received_total") or 0),
            relayed_total=int(value("farm_agent_readings_relayed_total") or 0),
            dead_lettered_total=int(value("farm_agent_readings_dead_lettered_total") or 0),
            spool_depth=int(value("farm_agent_spool_depth") or 0),
            e2e_latency_p95_ms=self.relay_latency.p95_ms(),
            spool_full=bool(value("farm_agent_spool_backpressure"))
            and not value("farm_agent_spool_disk_full"),
            spool_disk_full=bool(value("farm_agent_spool_disk_full")),
        )


def _known(value: float | None) -> float:
    # A figure that cannot be known is NaN on /metrics, never a made-up zero.
    return math.nan if value is None else value


class ProbeMetrics:
    """What the probes found, on /metrics next to the relay's counters."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.latency = Histogram(
            "farm_agent_probe_latency_seconds",
            "Latency of each probe that answered",
            ["probe", "kind"],
            buckets=PROBE_BUCKETS,
            registry=registry,
        )
        self.up = Gauge(
            "farm_agent_probe_up",
            "1 if the probe passed, else 0",
            ["probe", "kind"],
            registry=registry,
        )
        self.queue_depth = Gauge(
            "farm_agent_queue_depth",
            "Messages in the queue (role main) and the dead-letter queue (role dead_letter)",
            ["queue", "role"],
            registry=registry,
        )
        self.queue_oldest_age = Gauge(
            "farm_agent_queue_oldest_age_seconds",
            "Age of the oldest message in the queue",
            ["queue", "role"],
            registry=registry,
        )
        self.processing_p95 = Gauge(
            "farm_agent_task_processing_p95_seconds",
            "p95 of archived_at - enqueued_at over the last hour",
            registry=registry,
        )
        self.task_success = Gauge(
            "farm_agent_task_success_ratio",
            "archived / (archived + dead-lettered) over the last hour",
            registry=registry,
        )
        self.cache_hit_ratio = Gauge(
            "farm_agent_http_cache_hit_ratio",
            "Share of the last 20 probes the cache said it answered",
            ["probe"],
            registry=registry,
        )
        self.status = Gauge(
            "farm_agent_health_status",
            "1 for the agent's health status now (ok, degraded or down)",
            ["status"],
            registry=registry,
        )

    def record_probe(self, probe: str, kind: str, ok: bool, latency_ms: float | None) -> None:
        self.up.labels(probe=probe, kind=kind).set(1 if ok else 0)
        if latency_ms is not None:
            self.latency.labels(probe=probe, kind=kind).observe(latency_ms / 1000)

    def record_queue(
        self, queue: str, role: str, depth: int | None, oldest_age_s: float | None
    ) -> None:
        self.queue_depth.labels(queue=queue, role=role).set(_known(depth))
        self.queue_oldest_age.labels(queue=queue, role=role).set(_known(oldest_age_s))

    def record_tasks(self, processing_p95_s: float | None, task_success_pct: float | None) -> None:
        self.processing_p95.set(_known(processing_p95_s))
        self.task_success.set(_known(None if task_success_pct is None else task_success_pct / 100))

    def record_status(self, status: str) -> None:
        for name in STATUSES:
            self.status.labels(status=name).set(1 if name == status else 0)
