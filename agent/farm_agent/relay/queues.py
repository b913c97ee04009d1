"""The relay's two queues as an operator looks into them: figures, the oldest messages,
and dead letters put back or deleted.

`requeue` moves dead letters to the main queue in batches, each batch one transaction
(so an interruption between batches loses and duplicates nothing), each envelope kept
byte for byte except `requeued`, which counts how often that happened (an extension of
the envelope). `messages` reads without taking anything off a queue.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import asyncpg

from farm_agent.config import BackendConfig
from farm_agent.pgmq import pgmq_table

REQUEUE_BATCH = 500

MESSAGES = """
SELECT msg_id, read_ct, enqueued_at, message::text AS message
FROM {table} ORDER BY msg_id LIMIT $1
"""
# Locked, so two operators requeueing at once never move a dead letter twice.
PICK_DEAD_LETTERS = """
SELECT msg_id,
       (message || jsonb_build_object('requeued', CASE
            WHEN jsonb_typeof(message -> 'requeued') = 'number'
            THEN (message ->> 'requeued')::numeric::int ELSE 0 END + 1))::text AS message
FROM {table}
WHERE ($1::bigint[] IS NULL OR msg_id = ANY($1::bigint[])) AND msg_id <= $3
ORDER BY msg_id LIMIT $2
FOR UPDATE SKIP LOCKED
"""
# What a requeue will move: dead letters present when it started (the agent may add more).
COUNT_DEAD_LETTERS = """
SELECT count(*), max(msg_id) FROM {table}
WHERE $1::bigint[] IS NULL OR msg_id = ANY($1::bigint[])
"""


async def queue_stats(connection: asyncpg.Connection, backend: BackendConfig) -> dict[str, Any]:
    """Both queues' figures, from pgmq.metrics."""
    queues = {}
    for role, name in (("queue", backend.queue), ("dead_letter_queue", backend.dead_letter_queue)):
        row = await connection.fetchrow(
            "SELECT queue_length, oldest_msg_age_sec, newest_msg_age_sec, total_messages"
            " FROM pgmq.metrics($1::text)",
            name,
        )
        assert row is not None
        queues[role] = {
            "name": name,
            "depth": row["queue_length"],
            "oldest_age_s": row["oldest_msg_age_sec"],
            "newest_age_s": row["newest_msg_age_sec"],
            "sent_total": row["total_messages"],
        }
    return queues


async def messages(connection: asyncpg.Connection, queue: str, limit: int) -> list[dict[str, Any]]:
    """The oldest messages of a queue, left where they are (no read, no visibility change)."""
    rows = await connection.fetch(MESSAGES.format(table=pgmq_table("q", queue)), limit)
    return [
        {
            "msg_id": row["msg_id"],
            "read_ct": row["read_ct"],
            "enqueued_at": row["enqueued_at"].isoformat(),
            "message": json.loads(row["message"]),
        }
        for row in rows
    ]


async def requeue(
    connection: asyncpg.Connection,
    backend: BackendConfig,
    limit: int | None,
    ids: tuple[int, ...] | None,
    *,
    batch_size: int = REQUEUE_BATCH,
    progress: Callable[[int, int], None] | None = None,
) -> list[int]:
    """Move dead letters (all, the oldest `limit`, or those `ids`) to the main queue.

    `batch_size` at a time, each batch its own transaction; `progress(moved, total)`
    after each. Dead letters that arrive meanwhile are left for the next requeue.
    """
    table = pgmq_table("q", backend.dead_letter_queue)
    wanted = list(ids) if ids else None
    row = await connection.fetchrow(COUNT_DEAD_LETTERS.format(table=table), wanted)
    assert row is not None
    total, newest = int(row[0]), row[1]
    if newest is None:
        return []
    total = total if limit is None else min(total, limit)
    moved: list[int] = []
    while len(moved) < total:
        size = min(batch_size, total - len(moved))
        batch = await _requeue_batch(connection, backend, wanted, int(newest), size)
        if not batch:
            break  # the rest went meanwhile (another operator, or a consumer)
        moved.extend(batch)
        if progress is not None:
            progress(len(moved), total)
    return moved


async def _requeue_batch(
    connection: asyncpg.Connection,
    backend: BackendConfig,
    ids: list[int] | None,
    newest: int,
    size: int,
) -> list[int]:
    """One transaction: up to `size` of the oldest dead letters into the queue, off the DLQ."""
    pick = PICK_DEAD_LETTERS.format(table=pgmq_table("q", backend.dead_letter_queue))
    async with connection.transaction():
        rows = await connection.fetch(pick, ids, size, newest)
        if not rows:
            return []
        moved = [int(row["msg_id"]) for row in rows]
        await connection.fetch(
            "SELECT pgmq.send_batch($1::text, $2::text[]::jsonb[])",
            backend.queue,
            [row["message"] for row in rows],
        )
        await connection.fetch(
            "SELECT pgmq.delete($1::text, $2::bigint[])", backend.dead_letter_queue, moved
        )
    return moved


async def dead_letter_count(connection: asyncpg.Connection, backend: BackendConfig) -> int:
    """How many dead letters wait in the dead-letter queue."""
    count = await connection.fetchval(
        "SELECT queue_length FROM pgmq.metrics($1::text)", backend.dead_letter_queue
    )
    return int(count)


async def purge_dead_letters(
    connection: asyncpg.Connection, backend: BackendConfig, limit: int | None = None
) -> int:
    """Delete every dead letter, or only the oldest `limit`; returns how many went."""
    queue = backend.dead_letter_queue
    if limit is None:
        purged = await connection.fetchval("SELECT pgmq.purge_queue($1::text)", queue)
    else:
        purged = await connection.fetchval(
            f"SELECT count(*) FROM pgmq.delete($1::text, ARRAY("
            f"SELECT msg_id FROM {pgmq_table('q', queue)} ORDER BY msg_id LIMIT $2))",
            queue,
            limit,
        )
    return int(purged)
