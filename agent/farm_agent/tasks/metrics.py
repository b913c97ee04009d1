"""The worker's Prometheus metrics, in a registry of their own (`farm-agent work` serves them)."""

from __future__ import annotations

import math
import time
from bisect import bisect_left
from collections import defaultdict
from collections.abc import Iterator, Mapping
from itertools import accumulate

from prometheus_client import CollectorRegistry, Gauge
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample

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
        self._settled = _SettledTasks()
        self.registry.register(self._settled)
        self.queues = TaskQueueGauges(self.registry)
        self.running = Gauge(
            "farm_agent_tasks_running",
            "Handlers this worker is running now",
            registry=self.registry,
        )

    def settled(self, task_type: str, outcome: str, duration_s: float | None) -> None:
        self._settled.count(task_type, outcome, duration_s)


class _SettledTasks(Collector):
    """farm_agent_tasks_total and farm_agent_task_duration_seconds, counted in plain dicts.

    The worker counts every task it settles; a prometheus_client child takes a lock per
    count (three per task with the histogram), which showed in the worker's CPU per task.
    The families are built only when /metrics is read.
    """

    def __init__(self) -> None:
        self._created = time.time()
        self._tasks: dict[tuple[str, str], int] = defaultdict(int)
        # Per type: one count per bucket of DURATION_BUCKETS, then +Inf; and the sum.
        self._buckets: dict[str, list[int]] = {}
        self._sums: dict[str, float] = defaultdict(float)

    def count(self, task_type: str, outcome: str, duration_s: float | None) -> None:
        self._tasks[task_type, outcome] += 1
        if duration_s is None:
            return
        buckets = self._buckets.get(task_type)
        if buckets is None:
            buckets = self._buckets[task_type] = [0] * (len(DURATION_BUCKETS) + 1)
        buckets[bisect_left(DURATION_BUCKETS, duration_s)] += 1
        self._sums[task_type] += duration_s

    def collect(self) -> Iterator[Metric]:
        tasks = CounterMetricFamily(
            "farm_agent_tasks",
            "Tasks settled by this worker, by type and outcome (succeeded, retried, dead_lettered)",
            labels=["type", "outcome"],
        )
        for (task_type, outcome), count in sorted(self._tasks.items()):
            tasks.add_metric([task_type, outcome], count, created=self._created)
        yield tasks
        duration = HistogramMetricFamily(
            "farm_agent_task_duration_seconds",
            "How long this worker's handlers ran, by task type",
            labels=["type"],
        )
        bounds = [*(str(float(bound)) for bound in DURATION_BUCKETS), "+Inf"]
        for task_type, counts in sorted(self._buckets.items()):
            duration.add_metric(
                [task_type],
                list(zip(bounds, accumulate(counts), strict=True)),
                self._sums[task_type],
            )
            # What prometheus_client's own histograms expose too.
            duration.samples.append(
                Sample(f"{duration.name}_created", {"type": task_type}, self._created)
            )
        yield duration

    def describe(self) -> Iterator[Metric]:
        # Without samples: the registry checks names on registration, not the counts.
        yield CounterMetricFamily("farm_agent_tasks", "", labels=["type", "outcome"])
        yield HistogramMetricFamily("farm_agent_task_duration_seconds", "", labels=["type"])
