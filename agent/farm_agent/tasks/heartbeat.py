"""The worker's heartbeat: a row per worker in farm_resilience.task_workers, and its gauges.

Each beat also reads the queue depths and the live workers for /metrics, and once an
hour deletes figures older than `tasks.figures_retention_days`.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Callable

from farm_agent.config import TasksConfig
from farm_agent.failures import DATABASE_ERRORS
from farm_agent.tasks import sql
from farm_agent.tasks.database import TaskDatabase
from farm_agent.tasks.figures import read_task_depths, read_workers
from farm_agent.tasks.metrics import TaskMetrics

PRUNE_EVERY_S = 3600.0
STOPPED_BEAT_TIMEOUT_S = 3.0


class Heartbeat:
    """Beats every `tasks.heartbeat_s` until cancelled; `stopped()` says goodbye."""

    def __init__(
        self, database: TaskDatabase, tasks: TasksConfig, worker_id: str, metrics: TaskMetrics
    ) -> None:
        self._database = database
        self._tasks = tasks
        self._worker_id = worker_id
        self._metrics = metrics
        self._pruned_at = -math.inf

    async def run(self, running: Callable[[], int]) -> None:
        while True:
            self._metrics.running.set(running())
            # A failed beat is logged by the database; the next one tries again.
            with contextlib.suppress(*DATABASE_ERRORS):
                await self.beat(running())
            await asyncio.sleep(self._tasks.heartbeat_s)

    async def beat(self, running: int, stopped: bool = False) -> None:
        tasks = self._tasks
        async with self._database.connection() as connection:
            await connection.execute(
                sql.HEARTBEAT,
                self._worker_id,
                running,
                tasks.concurrency,
                tasks.heartbeat_s,
                stopped,
            )
            if stopped:
                return
            depths = await read_task_depths(connection, tasks)
            workers = await read_workers(connection)
            self._metrics.queues.record(depths, sum(worker.alive for worker in workers))
            if time.monotonic() - self._pruned_at >= PRUNE_EVERY_S:
                await connection.execute(sql.PRUNE_MINUTES, tasks.figures_retention_days)
                await connection.execute(sql.PRUNE_WORKERS)
                self._pruned_at = time.monotonic()

    async def stopped(self) -> None:
        """The last beat: this worker is gone (not alive at once, not after 3 silent beats)."""
        # Best effort: without it the worker shows as gone after three silent beats.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.beat(0, stopped=True), STOPPED_BEAT_TIMEOUT_S)
