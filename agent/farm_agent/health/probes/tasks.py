"""Task probe: the task queues and workers, and how long tasks took over the last hour.

Two sources. The task workers (`farm-agent work`) count every task they settle, by type
and minute, and beat in the database: `farm_agent.tasks.read_task_figures` reads that,
the health's `tasks` section (null when none of the task queues exists). Any other
consumer of the relay's queue is seen through PGMQ itself: consumers archive what they
finished (`pgmq.archive`), so the archive table holds `archived_at - enqueued_at` for
every finished task, and what failed went to the dead-letter queue; success = archived
/ (archived + dead-lettered) over the hour. The health's `queue.processing_p95_s` and
`queue.task_success_pct` come from the workers' figures when they counted any finished
task in the hour, else from the relay queue's archive.
"""

from __future__ import annotations

import dataclasses

import asyncpg

from farm_agent.config import BackendConfig, TasksConfig
from farm_agent.health.probes.result import FigureProbe, ProbeKind, TaskFigures
from farm_agent.pgmq import pgmq_table
from farm_agent.tasks import TaskHealth, read_task_figures

KIND = ProbeKind.TASKS
NAME = "tasks"
WINDOW = "1 hour"

FINISHED = """
SELECT count(*) AS archived,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY seconds) AS p50,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY seconds) AS p95
FROM (
    SELECT extract(epoch FROM archived_at - enqueued_at)::float8 AS seconds
    FROM {archive}
    WHERE archived_at > now() - interval '{window}'
) AS finished
"""
# Archived after it was enqueued: the archived_at condition lets the index do the work.
FAILED = """
SELECT (SELECT count(*) FROM {queue} WHERE enqueued_at > now() - interval '{window}')
     + (SELECT count(*) FROM {archive}
        WHERE archived_at > now() - interval '{window}'
          AND enqueued_at > now() - interval '{window}')
"""


async def task_figures(connection: asyncpg.Connection, backend: BackendConfig) -> TaskFigures:
    """The relay queue's last hour; raises if a queue's tables do not exist."""
    finished = await connection.fetchrow(
        FINISHED.format(archive=pgmq_table("a", backend.queue), window=WINDOW)
    )
    dead = backend.dead_letter_queue
    failed = await connection.fetchval(
        FAILED.format(queue=pgmq_table("q", dead), archive=pgmq_table("a", dead), window=WINDOW)
    )
    assert finished is not None
    archived, dead_lettered = int(finished["archived"]), int(failed or 0)
    settled = archived + dead_lettered
    return TaskFigures(
        archived=archived,
        dead_lettered=dead_lettered,
        processing_p50_s=finished["p50"],
        processing_p95_s=finished["p95"],
        # Nothing settled in the hour: the rate is unknown, not 0 % and not 100 %.
        task_success_pct=100 * archived / settled if settled else None,
    )


async def all_task_figures(
    connection: asyncpg.Connection, backend: BackendConfig, tasks: TasksConfig
) -> TaskFigures:
    """The relay queue's figures with the task workers' section, each source where it knows.

    Raises if neither the relay queue nor any task queue exists.
    """
    section = await read_task_figures(connection, tasks)
    try:
        relay = await task_figures(connection, backend)
    except asyncpg.UndefinedTableError:
        if not section.queues_exist:
            raise
        # A worker's host without a relay: the task queues still say what they know.
        relay = TaskFigures(None, None, None, None, None)
    if not section.queues_exist:
        return relay
    together = section.all_types
    if together is None or together.succeeded + together.dead_lettered == 0:
        return dataclasses.replace(relay, section=section)
    return dataclasses.replace(
        relay,
        processing_p50_s=together.p50_s,
        processing_p95_s=together.p95_s,
        task_success_pct=together.success_pct,
        section=section,
        from_workers=True,
    )


def probe(tasks: TasksConfig) -> FigureProbe[TaskFigures]:
    """The task probe for this config's task queues."""

    async def read(connection: asyncpg.Connection, backend: BackendConfig) -> TaskFigures:
        return await all_task_figures(connection, backend, tasks)

    return FigureProbe(NAME, KIND, read, _missing, _describe)


def _missing(backend: BackendConfig) -> str:
    return f"archive of {backend.queue} or {backend.dead_letter_queue} does not exist"


def _describe(figures: TaskFigures) -> str:
    section = figures.section
    if figures.task_success_pct is None:
        text = "nothing finished or dead-lettered in the last hour"
    elif figures.from_workers and section is not None and section.all_types is not None:
        together = section.all_types
        text = (
            f"{together.succeeded} succeeded, {together.dead_lettered} dead-lettered "
            "in the last hour"
        )
    else:
        text = (
            f"{figures.archived} archived, {figures.dead_lettered} dead-lettered in the last hour"
        )
    if figures.processing_p95_s is not None:
        text += f", p95 {figures.processing_p95_s:.1f} s"
    if section is not None:
        text += f"; {_workers(section)}"
    return text


def _workers(section: TaskHealth) -> str:
    alive = section.workers_alive
    return f"{alive} worker{'' if alive == 1 else 's'} alive"
