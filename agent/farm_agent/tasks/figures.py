"""The task figures as the health report shows them: depths, outcomes, latencies, workers.

Workers count every settled task in `farm_resilience.task_minutes` (one row per minute
and type) and beat in `farm_resilience.task_workers`; `read_task_figures` sums the last
hour. Definitions, per type over the window:

- succeeded: tasks archived after their handler returned;
- retried: failed attempts that were put back for another try;
- dead_lettered: tasks moved to the dead-letter queue, for any reason;
- failed: those of the dead-lettered whose handler failed for good (the last allowed
  attempt raised or timed out, or it raised PermanentError), as opposed to a task with
  no handler, a message that was no task, or one whose worker kept dying;
- success_pct: succeeded / (succeeded + dead_lettered), None when both are 0;
- p50_s / p95_s: from enqueue to done (the archive commit) of the succeeded tasks, read
  from the histogram (within 4.9 %, see farm_agent/histogram.py); wait_p95_s likewise to the start.

A figure that cannot be known is None (JSON null): a queue that does not exist has no
depth; before any worker ran there is no throughput.

The figures and the heartbeats are the database's, not one queue's: every agent reading
them sees every worker and every task type that wrote to this database.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import asyncpg

from farm_agent import histogram
from farm_agent.config import TASK_PRIORITIES, TasksConfig
from farm_agent.tasks import sql

WINDOW_S = 3600.0
# A worker is alive while its last heartbeat is younger than this many heartbeats.
ALIVE_HEARTBEATS = 3


@dataclass(frozen=True, slots=True)
class TaskTypeFigures:
    """One task type over the window."""

    succeeded: int
    failed: int
    retried: int
    dead_lettered: int
    success_pct: float | None
    p50_s: float | None
    p95_s: float | None
    wait_p95_s: float | None

    def as_json(self) -> dict[str, Any]:
        return {
            "succeeded": self.succeeded,
            "failed": self.failed,
            "retried": self.retried,
            "dead_lettered": self.dead_lettered,
            "success_pct": _round(self.success_pct, 2),
            "p50_s": _round(self.p50_s, 3),
            "p95_s": _round(self.p95_s, 3),
            "wait_p95_s": _round(self.wait_p95_s, 3),
        }


@dataclass(frozen=True, slots=True)
class WorkerFigures:
    """One worker as its heartbeats show it."""

    id: str
    last_seen_s: float
    alive: bool
    running: int
    concurrency: int
    # Said goodbye when it stopped (SIGTERM): not alive, yet not silent either.
    stopped: bool = False
    heartbeat_s: float | None = None

    @property
    def silent(self) -> bool:
        """Gone without a goodbye: no beat for ALIVE_HEARTBEATS beats (killed, hung, cut off)."""
        return not self.alive and not self.stopped

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "last_seen_s": round(self.last_seen_s, 1),
            "alive": self.alive,
            "running": self.running,
            "concurrency": self.concurrency,
        }


@dataclass(frozen=True, slots=True)
class TaskHealth:
    """The health report's `tasks` section (DESIGN.md, "Tasks"), `wait_p95_s` an extension."""

    depth: dict[str, int | None]
    dlq_depth: int | None
    throughput_per_s: float | None
    by_type: dict[str, TaskTypeFigures]
    workers: tuple[WorkerFigures, ...]
    # Every type together (None when nothing was counted): the health's `queue` figures.
    all_types: TaskTypeFigures | None = None

    @property
    def workers_alive(self) -> int:
        return sum(worker.alive for worker in self.workers)

    @property
    def queues_exist(self) -> bool:
        """Whether any of the task queues exists (none: tasks are not in use here)."""
        return self.dlq_depth is not None or any(d is not None for d in self.depth.values())

    @property
    def depth_total(self) -> int | None:
        """Tasks in the priority queues together (those that exist); None if none exists."""
        known = [depth for depth in self.depth.values() if depth is not None]
        return sum(known) if known else None

    def as_json(self) -> dict[str, Any]:
        return {
            "depth": dict(self.depth),
            "dlq_depth": self.dlq_depth,
            "throughput_per_s": _round(self.throughput_per_s, 3),
            "by_type": {name: figures.as_json() for name, figures in self.by_type.items()},
            "workers": [worker.as_json() for worker in self.workers],
        }


async def read_task_figures(
    connection: asyncpg.Connection, tasks: TasksConfig, window_s: float = WINDOW_S
) -> TaskHealth:
    """The `tasks` section over the last `window_s` seconds, from the database alone."""
    depth = await read_task_depths(connection, tasks)
    dlq_depth = await _depth(connection, tasks.dead_letter_queue)
    try:
        minutes = await connection.fetch(sql.MINUTES_SINCE, window_s)
        workers = await read_workers(connection, window_s)
    except asyncpg.UndefinedTableError:
        # No worker ever ran against this database: nothing is known.
        return TaskHealth(depth, dlq_depth, None, {}, ())
    by_type = _by_type(minutes)
    finished = sum(figures.succeeded + figures.dead_lettered for figures in by_type.values())
    known = bool(minutes) or bool(workers)
    return TaskHealth(
        depth=depth,
        dlq_depth=dlq_depth,
        throughput_per_s=finished / window_s if known else None,
        by_type=by_type,
        workers=workers,
        all_types=_all_types(minutes) if minutes else None,
    )


async def read_task_depths(
    connection: asyncpg.Connection, tasks: TasksConfig
) -> dict[str, int | None]:
    """Tasks in each priority queue (waiting or running); None for a queue not created yet."""
    return {
        priority: await _depth(connection, tasks.queue_for(priority))
        for priority in TASK_PRIORITIES
    }


async def read_workers(
    connection: asyncpg.Connection, window_s: float = WINDOW_S
) -> tuple[WorkerFigures, ...]:
    """The workers heard from within the window, by id."""
    rows = await connection.fetch(sql.WORKERS_SINCE, window_s)
    return tuple(
        WorkerFigures(
            id=row["id"],
            last_seen_s=max(0.0, row["last_seen_s"]),
            alive=not row["stopped"] and row["last_seen_s"] < ALIVE_HEARTBEATS * row["heartbeat_s"],
            running=row["running"],
            concurrency=row["concurrency"],
            stopped=row["stopped"],
            heartbeat_s=row["heartbeat_s"],
        )
        for row in rows
    )


async def _depth(connection: asyncpg.Connection, queue: str) -> int | None:
    try:
        return int(await connection.fetchval(sql.DEPTH, queue))
    except asyncpg.UndefinedTableError:
        return None


def _by_type(
    rows: Iterable[asyncpg.Record], key: Callable[[str], str] = lambda name: name
) -> dict[str, TaskTypeFigures]:
    sums: dict[str, dict[str, Any]] = {}
    for row in rows:
        entry = sums.setdefault(
            key(row["type"]),
            {"counts": [0, 0, 0, 0], "wait": [], "total": []},
        )
        for index, column in enumerate(("succeeded", "failed", "retried", "dead_lettered")):
            entry["counts"][index] += row[column]
        entry["wait"].append(json.loads(row["wait_histogram"]))
        entry["total"].append(json.loads(row["total_histogram"]))
    return {name: _type_figures(sums[name]) for name in sorted(sums)}


def _all_types(rows: Iterable[asyncpg.Record]) -> TaskTypeFigures:
    """Every type's rows summed as if they were one type."""
    return next(iter(_by_type(rows, lambda _: "").values()))


def _type_figures(entry: dict[str, Any]) -> TaskTypeFigures:
    succeeded, failed, retried, dead_lettered = entry["counts"]
    total = histogram.merge(entry["total"])
    settled = succeeded + dead_lettered
    return TaskTypeFigures(
        succeeded=succeeded,
        failed=failed,
        retried=retried,
        dead_lettered=dead_lettered,
        success_pct=100 * succeeded / settled if settled else None,
        p50_s=histogram.quantile(total, 0.5),
        p95_s=histogram.quantile(total, 0.95),
        wait_p95_s=histogram.quantile(histogram.merge(entry["wait"]), 0.95),
    )


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)
