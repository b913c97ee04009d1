"""The worker's metrics, in a `Metrics` of their own (`farm-agent work` serves them)."""

from __future__ import annotations

import math
from collections.abc import Mapping

from farm_agent.config import TASK_PRIORITIES
from farm_agent.metrics import Metrics

# Handlers take milliseconds to minutes; the default processing target is 30 s.
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800)


class TaskQueueGauges:
    """Depth by priority and live workers: on the worker's /metrics and the agent's alike."""

    def __init__(self, metrics: Metrics) -> None:
        self.depth = metrics.labelled_gauge(
            "farm_agent_task_queue_depth",
            "Tasks waiting or running in each priority queue",
            ["priority"],
        )
        self.workers_alive = metrics.gauge(
            "farm_agent_workers_alive",
            "Task workers whose heartbeat is less than three heartbeats old",
        )
        self.record({}, None)

    def record(self, depths: Mapping[str, int | None], workers_alive: int | None) -> None:
        """What the last reading found; a figure not known is NaN, never a made-up zero."""
        for priority in TASK_PRIORITIES:
            depth = depths.get(priority)
            self.depth.labels(priority).set(math.nan if depth is None else depth)
        self.workers_alive.set(math.nan if workers_alive is None else workers_alive)


class TaskMetrics:
    """Tasks settled by this worker, how long handlers ran, queue depths and live workers."""

    def __init__(self) -> None:
        self.metrics = metrics = Metrics()
        self._tasks = metrics.labelled_counter(
            "farm_agent_tasks",
            "Tasks settled by this worker, by type and outcome (succeeded, retried, dead_lettered)",
            ["type", "outcome"],
        )
        self._durations = metrics.labelled_histogram(
            "farm_agent_task_duration_seconds",
            "How long this worker's handlers ran, by task type",
            ["type"],
            DURATION_BUCKETS,
        )
        self.queues = TaskQueueGauges(metrics)
        self.running = metrics.gauge(
            "farm_agent_tasks_running", "Handlers this worker is running now"
        )

    def settled(self, task_type: str, outcome: str, duration_s: float | None) -> None:
        self._tasks.child((task_type, outcome)).inc()
        if duration_s is not None:
            self._durations.child((task_type,)).observe(duration_s)
