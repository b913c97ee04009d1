"""`farm-agent queue`: look into the queue and its dead letters, and put dead letters back.

`dlq requeue` moves dead letters to the main queue in batches, each batch one
transaction (so an interruption between batches loses and duplicates nothing), each
envelope kept byte for byte except `requeued`, which counts how often that happened
(an extension of the envelope). `peek` and `list` read without taking anything off a queue.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
from rich.markup import escape
from rich.table import Table

from farm_agent.commands.check import wide_console
from farm_agent.config import AgentConfig
from farm_agent.health.judging import mask
from farm_agent.health.probes.postgres import (
    DATABASE_ERRORS,
    close_quietly,
    connect_any,
    pgmq_table,
)
from farm_agent.health.probes.queue import METRICS
from farm_agent.health.probes.tasks import task_figures
from farm_agent.logs import secrets_of
from farm_agent.relay.route import describe_failure

EXIT_OK = 0
EXIT_FAILED = 1
SHOWN_PAYLOAD = 60
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


@dataclass(frozen=True, slots=True)
class QueueRequest:
    """One `queue` command as typed: the action and its options."""

    action: str
    as_json: bool = False
    limit: int | None = None
    ids: tuple[int, ...] = ()
    yes: bool = False
    batch_size: int = REQUEUE_BATCH


def run_queue_command(
    config: AgentConfig, request: QueueRequest, ask: Callable[[str], str] = input
) -> int:
    """Run one `queue` command; exit 0, or 1 with the reason on stderr."""
    secrets = secrets_of(config)
    try:
        return asyncio.run(_run(config, request, ask))
    except DATABASE_ERRORS as err:
        reason = describe_failure(err)
        if isinstance(err, asyncpg.UndefinedTableError):
            reason = f"queue {config.backend.queue} or its dead-letter queue does not exist yet"
        print(f"farm-agent: queue {request.action}: {mask(reason, secrets)}", file=sys.stderr)
        return EXIT_FAILED


async def _run(config: AgentConfig, request: QueueRequest, ask: Callable[[str], str]) -> int:
    backend = config.backend
    _, connection = await connect_any(backend, backend.connect_timeout_s)
    try:
        action = request.action
        if action == "stats":
            return _show(request, await stats(connection, config), _render_stats)
        if action in ("peek", "dlq list"):
            queue = backend.queue if action == "peek" else backend.dead_letter_queue
            found = await messages(connection, queue, request.limit or 10)
            return _show(request, found, lambda shown: _render_messages(queue, shown))
        if action == "dlq requeue":
            moved = await requeue(
                connection,
                config,
                request.limit,
                request.ids or None,
                batch_size=request.batch_size,
                progress=_show_progress,
            )
            return _show(request, {"requeued": moved, "to": backend.queue}, _render_requeued)
        if action == "dlq purge":
            return await _purge(connection, config, request, ask)
        raise ValueError(f"unknown queue action {action!r}")
    finally:
        await close_quietly(connection)


async def stats(connection: asyncpg.Connection, config: AgentConfig) -> dict[str, Any]:
    """Both queues' figures and the last hour of tasks."""
    backend = config.backend
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
    tasks = await task_figures(connection, backend)
    queues["last_hour"] = {
        "archived": tasks.archived,
        "dead_lettered": tasks.dead_lettered,
        "processing_p50_s": tasks.processing_p50_s,
        "processing_p95_s": tasks.processing_p95_s,
        "task_success_pct": tasks.task_success_pct,
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
    config: AgentConfig,
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
    table = pgmq_table("q", config.backend.dead_letter_queue)
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
        batch = await _requeue_batch(connection, config, wanted, int(newest), size)
        if not batch:
            break  # the rest went meanwhile (another operator, or a consumer)
        moved.extend(batch)
        if progress is not None:
            progress(len(moved), total)
    return moved


async def _requeue_batch(
    connection: asyncpg.Connection,
    config: AgentConfig,
    ids: list[int] | None,
    newest: int,
    size: int,
) -> list[int]:
    """One transaction: up to `size` of the oldest dead letters into the queue, off the DLQ."""
    backend = config.backend
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


def _show_progress(moved: int, total: int) -> None:
    print(f"requeued {moved} of {total} dead letters", file=sys.stderr, flush=True)


async def _purge(
    connection: asyncpg.Connection,
    config: AgentConfig,
    request: QueueRequest,
    ask: Callable[[str], str],
) -> int:
    queue = config.backend.dead_letter_queue
    row = await connection.fetchrow(METRICS, queue)
    assert row is not None
    if not request.yes:
        question = f"Delete all {row['queue_length']} dead letters in {queue}? [y/N] "
        try:
            answer = ask(question)
        except EOFError:
            answer = ""
        if answer.strip().lower() not in ("y", "yes"):
            print("nothing deleted", file=sys.stderr)
            return EXIT_FAILED
    purged = await connection.fetchval("SELECT pgmq.purge_queue($1::text)", queue)
    return _show(request, {"purged": int(purged), "queue": queue}, _render_purged)


def _show(request: QueueRequest, result: Any, render: Callable[[Any], None]) -> int:
    if request.as_json:
        sys.stdout.write(json.dumps(result, default=str) + "\n")
    else:
        render(result)
    return EXIT_OK


def _render_stats(stats: dict[str, Any]) -> None:
    console = wide_console()
    for role in ("queue", "dead_letter_queue"):
        queue = stats[role]
        label = "queue" if role == "queue" else "dead-letter queue"
        console.print(
            f"[bold]{label} {escape(queue['name'])}[/]: depth {queue['depth']}, "
            f"oldest {_age(queue['oldest_age_s'])}, newest {_age(queue['newest_age_s'])}, "
            f"sent since created {queue['sent_total']}"
        )
    hour = stats["last_hour"]
    success = hour["task_success_pct"]
    console.print(
        f"[bold]last hour[/]: {hour['archived']} archived, {hour['dead_lettered']} dead-lettered, "
        f"success {'unknown' if success is None else f'{success:.2f} %'}, processing p50 "
        f"{_age(hour['processing_p50_s'])}, p95 {_age(hour['processing_p95_s'])}"
    )


def _render_messages(queue: str, found: list[dict[str, Any]]) -> None:
    table = Table(title=f"{queue}: the oldest {len(found)}")
    for column in ("msg_id", "enqueued_at", "reads", "requeued", "topic", "payload / error"):
        table.add_column(column, no_wrap=column not in ("topic", "payload / error"))
    for message in found:
        envelope = message["message"]
        body = envelope if isinstance(envelope, dict) else {"payload": envelope}
        shown = body.get("error") or json.dumps(body.get("payload", body.get("payload_b64")))
        table.add_row(
            str(message["msg_id"]),
            message["enqueued_at"][:23],
            str(message["read_ct"]),
            str(body.get("requeued", 0)),
            escape(str(body.get("topic", "-"))),
            escape(str(shown)[:SHOWN_PAYLOAD]),
        )
    wide_console().print(table)


def _render_requeued(result: dict[str, Any]) -> None:
    count = len(result["requeued"])
    print(f"requeued {count} dead letter{'s' if count != 1 else ''} to {result['to']}")


def _render_purged(result: dict[str, Any]) -> None:
    print(f"purged {result['purged']} dead letters from {result['queue']}")


def _age(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:g} s"
