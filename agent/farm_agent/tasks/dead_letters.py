"""Task dead letters for an operator: list them, requeue them, purge them; by type if asked.

Requeue puts each task back on its own priority queue as a fresh message (so attempts
start again at 1), the envelope kept as it was minus error/attempts/failed_at/queue and
with `requeued` counted up; it moves at most `batch_size` per transaction, each
transaction atomic, and only the dead letters there when it started: a task that fails
again while the requeue runs waits for the next one (else a worker dead-lettering it
at once would keep the requeue going for ever). A dead letter that was no task (type
"(invalid)") cannot be requeued: it stays until purged. `farm-agent queue dlq --queue
tasks` wires these to the command line.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from farm_agent.config import TASK_PRIORITIES, TasksConfig
from farm_agent.pgmq import pgmq_table
from farm_agent.tasks.envelope import NOT_A_TASK

BATCH_SIZE = 100
# Matches a dead letter of type $1 (NULL: any); "(invalid)" matches those that were no task.
_OF_TYPE = f"($1::text IS NULL OR coalesce(message ->> 'type', '{NOT_A_TASK}') = $1)"
_REQUEUABLE = (
    "jsonb_typeof(message -> 'type') = 'string' AND jsonb_typeof(message -> 'id') = 'string'"
    " AND message ? 'payload' AND message ->> 'priority' = ANY($4::text[])"
)
LIST = f"""
SELECT msg_id, enqueued_at, message::text AS message FROM {{table}}
WHERE {_OF_TYPE} ORDER BY msg_id LIMIT $2
"""
# Of these ids ($5; NULL: any) and there when the requeue started ($6 the newest then).
_CHOSEN = "($5::bigint[] IS NULL OR msg_id = ANY($5::bigint[])) AND msg_id <= $6"
# Locked, so two operators requeueing at once never move a dead letter twice.
PICK = f"""
SELECT msg_id, message ->> 'priority' AS priority,
       (message - 'error' - 'attempts' - 'failed_at' - 'queue'
        || jsonb_build_object('requeued', CASE
            WHEN jsonb_typeof(message -> 'requeued') = 'number'
            THEN (message ->> 'requeued')::numeric::int ELSE 0 END + 1))::text AS envelope
FROM {{table}}
WHERE {_OF_TYPE} AND msg_id > $2 AND {_REQUEUABLE} AND {_CHOSEN}
ORDER BY msg_id LIMIT $3
FOR UPDATE SKIP LOCKED
"""
# What a requeue will move, and the newest dead letter when it starts.
COUNT_REQUEUABLE = f"""
SELECT count(*) FILTER (
           WHERE {_REQUEUABLE.replace("$4", "$2")}
             AND ($3::bigint[] IS NULL OR msg_id = ANY($3::bigint[]))
       ) AS requeuable,
       max(msg_id) AS newest
FROM {{table}} WHERE {_OF_TYPE}
"""
COUNT = f"SELECT count(*) FROM {{table}} WHERE {_OF_TYPE}"
COUNT_STUCK = f"""
SELECT count(*) FROM {{table}} WHERE {_OF_TYPE} AND NOT ({_REQUEUABLE.replace("$4", "$2")})
"""
PURGE = f"""
WITH doomed AS (
    SELECT msg_id FROM {{table}} WHERE {_OF_TYPE} ORDER BY msg_id LIMIT $2 FOR UPDATE SKIP LOCKED
)
SELECT count(*) FROM pgmq.delete($3::text, ARRAY(SELECT msg_id FROM doomed))
"""


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One task dead letter, as an operator reads it."""

    msg_id: int
    enqueued_at: datetime
    type: str
    error: str | None
    attempts: int | None
    failed_at: str | None
    body: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Requeued:
    """What a requeue did: how many went back to each priority, how many could not."""

    by_priority: dict[str, int]
    not_requeuable: int
    # The dead letters' message ids, oldest first.
    msg_ids: tuple[int, ...] = ()

    @property
    def total(self) -> int:
        return sum(self.by_priority.values())


async def list_dead_letters(
    connection: asyncpg.Connection,
    tasks: TasksConfig,
    task_type: str | None = None,
    limit: int = 10,
) -> list[DeadLetter]:
    """The oldest dead letters (of one type), left where they are."""
    table = pgmq_table("q", tasks.dead_letter_queue)
    rows = await connection.fetch(LIST.format(table=table), task_type, limit)
    letters = []
    for row in rows:
        body = json.loads(row["message"])
        body = body if isinstance(body, dict) else {"message": body}
        letter_type = body.get("type")
        letters.append(
            DeadLetter(
                msg_id=row["msg_id"],
                enqueued_at=row["enqueued_at"],
                type=letter_type if isinstance(letter_type, str) else NOT_A_TASK,
                error=body.get("error"),
                attempts=body.get("attempts"),
                failed_at=body.get("failed_at"),
                body=body,
            )
        )
    return letters


async def requeue_dead_letters(
    connection: asyncpg.Connection,
    tasks: TasksConfig,
    task_type: str | None = None,
    limit: int | None = None,
    batch_size: int = BATCH_SIZE,
    *,
    ids: tuple[int, ...] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Requeued:
    """Move dead letters (of one type, those `ids`; the oldest `limit`) back to their queues.

    `progress(moved, total)` after each batch.
    """
    table = pgmq_table("q", tasks.dead_letter_queue)
    wanted = list(ids) if ids else None
    counted = await connection.fetchrow(
        COUNT_REQUEUABLE.format(table=table), task_type, list(TASK_PRIORITIES), wanted
    )
    assert counted is not None
    total = int(counted["requeuable"])
    total = total if limit is None else min(total, limit)
    moved: dict[str, int] = dict.fromkeys(TASK_PRIORITIES, 0)
    moved_ids: list[int] = []
    after = 0
    while len(moved_ids) < total:
        size = min(batch_size, total - len(moved_ids))
        async with connection.transaction():
            rows = await connection.fetch(
                PICK.format(table=table),
                task_type,
                after,
                size,
                list(TASK_PRIORITIES),
                wanted,
                counted["newest"],
            )
            if not rows:
                break  # the rest went meanwhile (another operator)
            by_priority: dict[str, list[str]] = defaultdict(list)
            for row in rows:
                by_priority[row["priority"]].append(row["envelope"])
            for priority, envelopes in by_priority.items():
                await connection.execute(
                    "SELECT pgmq.send_batch($1::text, $2::text[]::jsonb[])",
                    tasks.queue_for(priority),
                    envelopes,
                )
                moved[priority] += len(envelopes)
            batch = [row["msg_id"] for row in rows]
            await connection.execute(
                "SELECT pgmq.delete($1::text, $2::bigint[])", tasks.dead_letter_queue, batch
            )
        moved_ids.extend(batch)
        after = max(batch)
        if progress is not None:
            progress(len(moved_ids), total)
    stuck = await connection.fetchval(
        COUNT_STUCK.format(table=table), task_type, list(TASK_PRIORITIES)
    )
    return Requeued(by_priority=moved, not_requeuable=int(stuck), msg_ids=tuple(moved_ids))


async def count_dead_letters(
    connection: asyncpg.Connection, tasks: TasksConfig, task_type: str | None = None
) -> int:
    """How many dead letters (of one type) wait in the tasks' dead-letter queue."""
    table = pgmq_table("q", tasks.dead_letter_queue)
    return int(await connection.fetchval(COUNT.format(table=table), task_type))


async def purge_dead_letters(
    connection: asyncpg.Connection,
    tasks: TasksConfig,
    task_type: str | None = None,
    batch_size: int = 1000,
    limit: int | None = None,
) -> int:
    """Delete the dead letters (of one type; only the oldest `limit` if given),
    `batch_size` per statement; returns how many went."""
    table = pgmq_table("q", tasks.dead_letter_queue)
    purged = 0
    while limit is None or purged < limit:
        wanted = batch_size if limit is None else min(batch_size, limit - purged)
        deleted = int(
            await connection.fetchval(
                PURGE.format(table=table), task_type, wanted, tasks.dead_letter_queue
            )
        )
        purged += deleted
        if deleted < wanted:
            break
    return purged
