"""`farm-agent queue`: look into the queue and its dead letters, and put dead letters back.

The arguments and the output; what is done to the queues is `farm_agent.relay.queues`.
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
from farm_agent.config import AgentConfig, BackendConfig
from farm_agent.database import close_quietly, connect_any
from farm_agent.failures import DATABASE_ERRORS, describe_failure
from farm_agent.health.probes.tasks import task_figures
from farm_agent.masking import mask, secrets_of
from farm_agent.relay.queues import (
    REQUEUE_BATCH,
    dead_letter_count,
    messages,
    purge_dead_letters,
    queue_stats,
    requeue,
)
from farm_agent.schema.migrations import SHORT_HINT

EXIT_OK = 0
EXIT_FAILED = 1
SHOWN_PAYLOAD = 60


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
            reason = (
                f"queue {config.backend.queue} or its dead-letter queue does not exist yet "
                f"({SHORT_HINT})"
            )
        print(f"farm-agent: queue {request.action}: {mask(reason, secrets)}", file=sys.stderr)
        return EXIT_FAILED


async def _run(config: AgentConfig, request: QueueRequest, ask: Callable[[str], str]) -> int:
    backend = config.backend
    _, connection = await connect_any(backend, backend.connect_timeout_s)
    try:
        action = request.action
        if action == "stats":
            return _show(request, await stats(connection, backend), _render_stats)
        if action in ("peek", "dlq list"):
            queue = backend.queue if action == "peek" else backend.dead_letter_queue
            found = await messages(connection, queue, request.limit or 10)
            return _show(request, found, lambda shown: _render_messages(queue, shown))
        if action == "dlq requeue":
            moved = await requeue(
                connection,
                backend,
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


async def stats(connection: asyncpg.Connection, backend: BackendConfig) -> dict[str, Any]:
    """Both queues' figures and the last hour of tasks."""
    found = await queue_stats(connection, backend)
    tasks = await task_figures(connection, backend)
    found["last_hour"] = {
        "archived": tasks.archived,
        "dead_lettered": tasks.dead_lettered,
        "processing_p50_s": tasks.processing_p50_s,
        "processing_p95_s": tasks.processing_p95_s,
        "task_success_pct": tasks.task_success_pct,
    }
    return found


def _show_progress(moved: int, total: int) -> None:
    print(f"requeued {moved} of {total} dead letters", file=sys.stderr, flush=True)


async def _purge(
    connection: asyncpg.Connection,
    config: AgentConfig,
    request: QueueRequest,
    ask: Callable[[str], str],
) -> int:
    queue = config.backend.dead_letter_queue
    count = await dead_letter_count(connection, config.backend)
    if not request.yes:
        question = f"Delete all {count} dead letters in {queue}? [y/N] "
        try:
            answer = ask(question)
        except EOFError:
            answer = ""
        if answer.strip().lower() not in ("y", "yes"):
            print("nothing deleted", file=sys.stderr)
            return EXIT_FAILED
    purged = await purge_dead_letters(connection, config.backend)
    return _show(request, {"purged": purged, "queue": queue}, _render_purged)


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
