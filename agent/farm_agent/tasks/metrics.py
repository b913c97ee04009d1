"""The worker's Prometheus metrics, in a registry of their own (`farm-agent work` serves them)."""

from __future__ import annotations

import math
from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from farm_agent.config import TASK_PRIORITIES

# Handlers take milliseconds to minutes; the default processing target is 30 s.
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800)


class TaskQueueGauges:
    """Depth by priority and live workers: on the worker's /metrics and the agent's alike."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.depth = Gauge(
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
        self.record({}, None)

    def record(self, depths: Mapping[str, int | None], workers_alive: int | None) -> None:
        """What the last reading found; a figure not known is NaN, never a made-up zero."""
        for priority in TASK_PRIORITIES:
            depth = depths.get(priority)
            self.depth.labels(priority=priority).set(math.nan if depth is None else depth)
        self.workers_alive.set(math.nan if workers_alive is None else workers_alive)


class TaskMetrics:
    """Tasks settled by this worker, how long handlers ran, queue depths and live workers."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        registry = self.registry
        self.tasks = Counter(
            "farm_agent_tasks",
            "Tasks settled by this worker, by type and outcome (succeeded, retried, dead_lettered)",
            ["type", "outcome"],
            registry=registry,
        )
        self.duration = Histogram(
            "farm_agent_task_duration_seconds",
            "How long this worker's handlers ran, by task type",
            ["type"],
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self.queues = TaskQueueGauges(registry)
        self.running = Gauge(
            "farm_agent_tasks_running", "Handlers this worker is running now", registry=registry
        )
        self._counters: dict[tuple[str, str], Counter] = {}
        self._durations: dict[str, Histogram] = {}

    def settled(self, task_type: str, outcome: str, duration_s: float | None) -> None:
        # Looking a labelled child up costs more than the count itself: keep them.
        key = (task_type, outcome)
        counter = self._counters.get(key)
        if counter is None:
            counter = self._counters[key] = self.tasks.labels(type=task_type, outcome=outcome)
        counter.inc()
        if duration_s is not None:
            histogram = self._durations.get(task_type)
            if histogram is None:
                histogram = self._durations[task_type] = self.duration.labels(type=task_type)
            histogram.observe(duration_s)
