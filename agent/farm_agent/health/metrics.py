"""What the probes found and the health judged, on /metrics next to the relay's counters."""

from __future__ import annotations

import math

from prometheus_client import CollectorRegistry, Gauge, Histogram

from farm_agent.config import TASK_PRIORITIES
from farm_agent.health.status import HealthStatus
from farm_agent.tasks import TaskHealth

# Probes answer in milliseconds when healthy; the top buckets catch a struggling backend.
PROBE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


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
            "p95 of task processing, enqueued to done, over the last hour "
            "(the task workers' figures, else the relay queue's archive)",
            registry=registry,
        )
        self.task_success = Gauge(
            "farm_agent_task_success_ratio",
            "Tasks done / (done + dead-lettered) over the last hour "
            "(the task workers' figures, else the relay queue's archive)",
            registry=registry,
        )
        # The same names and meaning as on the worker's own /metrics (farm-agent work).
        self.task_queue_depth = Gauge(
            "farm_agent_task_queue_depth",
            "Tasks waiting or running in each priority queue",
            ["priority"],
            registry=registry,
        )
        self.workers_alive = Gauge(
            "farm_agent_workers_alive",
            "Task workers whose heartbeat is less than three heartbeats old",
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

    def record_task_queues(self, section: TaskHealth | None) -> None:
        """The task queues' depths and the live workers; NaN while unknown or not in use."""
        for priority in TASK_PRIORITIES:
            depth = section.depth.get(priority) if section is not None else None
            self.task_queue_depth.labels(priority=priority).set(_known(depth))
        self.workers_alive.set(_known(section.workers_alive if section is not None else None))

    def record_status(self, status: HealthStatus) -> None:
        for name in HealthStatus:
            self.status.labels(status=name).set(1 if name == status else 0)
