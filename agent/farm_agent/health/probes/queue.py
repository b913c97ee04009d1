"""Queue probe: depth and oldest message of the queue and its dead-letter queue (pgmq.metrics)."""

from __future__ import annotations

import asyncpg

from farm_agent.config import BackendConfig
from farm_agent.health.probes.result import FigureProbe, ProbeKind, QueueFigures
from farm_agent.schema.migrations import SHORT_HINT

KIND = ProbeKind.QUEUE
NAME = "queue"

METRICS = "SELECT queue_length, oldest_msg_age_sec FROM pgmq.metrics($1::text)"


async def queue_figures(connection: asyncpg.Connection, backend: BackendConfig) -> QueueFigures:
    """Both queues' figures; raises if a queue does not exist (UndefinedTableError)."""
    main = await connection.fetchrow(METRICS, backend.queue)
    dead = await connection.fetchrow(METRICS, backend.dead_letter_queue)
    assert main is not None
    assert dead is not None
    return QueueFigures(
        depth=int(main["queue_length"]),
        oldest_age_s=_seconds(main["oldest_msg_age_sec"]),
        dlq_depth=int(dead["queue_length"]),
        dlq_oldest_age_s=_seconds(dead["oldest_msg_age_sec"]),
    )


def _missing(backend: BackendConfig) -> str:
    return (
        f"queue {backend.queue} or {backend.dead_letter_queue} does not exist "
        f"({SHORT_HINT}; an agent with backend.manage_schema makes them)"
    )


def _describe(figures: QueueFigures) -> str:
    detail = f"depth {figures.depth}, dead letters {figures.dlq_depth}"
    if figures.oldest_age_s is not None:
        detail += f", oldest {figures.oldest_age_s:g} s"
    return detail


PROBE = FigureProbe(NAME, KIND, queue_figures, _missing, _describe)


def _seconds(value: int | None) -> float | None:
    # pgmq.metrics says NULL for the age of the oldest message of an empty queue.
    return None if value is None else float(value)
