"""What the probes found and the health judged, on /metrics next to the relay's counters."""

from __future__ import annotations

import math

from farm_agent.health.status import HealthStatus
from farm_agent.metrics import Metrics
from farm_agent.tasks import TaskHealth, TaskQueueGauges

# Probes answer in milliseconds when healthy; the top buckets catch a struggling backend.
PROBE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


def _known(value: float | None) -> float:
    # A figure that cannot be known is NaN on /metrics, never a made-up zero.
    return math.nan if value is None else value


class ProbeMetrics:
    """What the probes found, on /metrics next to the relay's counters."""

    def __init__(self, metrics: Metrics) -> None:
        self.latency = metrics.labelled_histogram(
            "farm_agent_probe_latency_seconds",
            "Latency of each probe that answered",
            ["probe", "kind"],
            PROBE_BUCKETS,
        )
        self.up = metrics.labelled_gauge(
            "farm_agent_probe_up",
            "1 if the probe passed, else 0",
            ["probe", "kind"],
        )
        self.queue_depth = metrics.labelled_gauge(
            "farm_agent_queue_depth",
            "Messages in the queue (role main) and the dead-letter queue (role dead_letter)",
            ["queue", "role"],
        )
        self.queue_oldest_age = metrics.labelled_gauge(
            "farm_agent_queue_oldest_age_seconds",
            "Age of the oldest message in the queue",
            ["queue", "role"],
        )
        self.processing_p95 = metrics.gauge(
            "farm_agent_task_processing_p95_seconds",
            "p95 of task processing, enqueued to done, over the last hour "
            "(the task workers' figures, else the relay queue's archive)",
        )
        self.task_success = metrics.gauge(
            "farm_agent_task_success_ratio",
            "Tasks done / (done + dead-lettered) over the last hour "
            "(the task workers' figures, else the relay queue's archive)",
        )
        # The same names and meaning as on the worker's own /metrics (farm-agent work).
        self.task_queues = TaskQueueGauges(metrics)
        self.cache_hit_ratio = metrics.labelled_gauge(
            "farm_agent_http_cache_hit_ratio",
            "Share of the last 20 probes the cache said it answered",
            ["probe"],
        )
        self.status = metrics.labelled_gauge(
            "farm_agent_health_status",
            "1 for the agent's health status now (ok, degraded or down)",
            ["status"],
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
        if section is None:
            self.task_queues.record({}, None)
        else:
            self.task_queues.record(section.depth, section.workers_alive)

    def record_status(self, status: HealthStatus) -> None:
        for name in HealthStatus:
            self.status.labels(status=name).set(1 if name == status else 0)
