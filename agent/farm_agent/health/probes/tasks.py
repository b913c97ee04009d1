"""Task probe: how long consumers took over the last hour, and how many tasks failed.

Consumers archive what they finished (`pgmq.archive`), so the archive table holds
`archived_at - enqueued_at` for every finished task; what failed went to the
dead-letter queue. Success = archived / (archived + dead-lettered) over the hour.
"""

from __future__ import annotations

import asyncpg

from farm_agent.config import BackendConfig
from farm_agent.health.probes.result import FigureProbe, ProbeKind, TaskFigures
from farm_agent.pgmq import pgmq_table

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
    """The last hour's figures; raises if a queue's tables do not exist."""
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


def _missing(backend: BackendConfig) -> str:
    return f"archive of {backend.queue} or {backend.dead_letter_queue} does not exist"


def _describe(figures: TaskFigures) -> str:
    if figures.task_success_pct is None:
        return "nothing finished or dead-lettered in the last hour"
    text = f"{figures.archived} archived, {figures.dead_lettered} dead-lettered in the last hour"
    if figures.processing_p95_s is not None:
        text += f", p95 {figures.processing_p95_s:.1f} s"
    return text


PROBE = FigureProbe(NAME, KIND, task_figures, _missing, _describe)
