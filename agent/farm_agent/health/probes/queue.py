"""Queue probe: depth and oldest message of the queue and its dead-letter queue (pgmq.metrics)."""

from __future__ import annotations

import time

import asyncpg

from farm_agent.config import BackendConfig
from farm_agent.health.probes.result import ProbeResult, QueueFigures

KIND = "queue"
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


async def probe_queue(
    connection: asyncpg.Connection, backend: BackendConfig
) -> tuple[ProbeResult, QueueFigures | None]:
    """The queue's figures and a result saying them in words."""
    started = time.perf_counter()
    try:
        figures = await queue_figures(connection, backend)
    except asyncpg.UndefinedTableError:
        detail = (
            f"queue {backend.queue} or {backend.dead_letter_queue} does not exist "
            "(the agent creates both when it starts)"
        )
        return ProbeResult(NAME, KIND, False, None, detail), None
    latency_ms = (time.perf_counter() - started) * 1000
    detail = f"depth {figures.depth}, dead letters {figures.dlq_depth}"
    if figures.oldest_age_s is not None:
        detail += f", oldest {figures.oldest_age_s:g} s"
    return ProbeResult(NAME, KIND, True, latency_ms, detail), figures


def _seconds(value: int | None) -> float | None:
    # pgmq.metrics says NULL for the age of the oldest message of an empty queue.
    return None if value is None else float(value)
