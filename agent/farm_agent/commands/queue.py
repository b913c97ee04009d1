"""`farm-agent queue`: look into the queue and its dead letters, and put dead letters back.

The arguments and the output; what is done to the queues is `farm_agent.relay.queues`,
and for the tasks' dead letters (`dlq ... --queue tasks`) `farm_agent.tasks.dead_letters`.
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

from farm_agent.commands import task_dead_letters
from farm_agent.commands.check import wide_console
from farm_agent.commands.task_dead_letters import DeadLetterArgumentError, DeadLetters, Target
from farm_agent.config import AgentConfig
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
from farm_agent.tasks import count_dead_letters, read_task_figures, requeue_dead_letters
from farm_agent.tasks import purge_dead_letters as purge_task_dead_letters

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_ARGUMENT = 2
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
    # `dlq` only: which dead-letter queue (None: the relay's), and the task type to select.
    queue: str | None = None
    task_type: str | None = None


def run_queue_command(
    config: AgentConfig, request: QueueRequest, ask: Callable[[str], str] = input
) -> int:
    """Run one `queue` command; exit 0, 1 with the reason on stderr, 2 for a bad argument."""
    secrets = secrets_of(config)
    try:
        dead_letters = task_dead_letters.target(config, request.queue, request.task_type)
    except DeadLetterArgumentError as err:
        print(f"farm-agent: queue {request.action}: {err}", file=sys.stderr)
        return EXIT_BAD_ARGUMENT
    try:
        return asyncio.run(_run(config, request, dead_letters, ask))
    except DATABASE_ERRORS as err:
        reason = describe_failure(err)
        if isinstance(err, asyncpg.UndefinedTableError):
            reason = _missing(config, request, dead_letters)
        print(f"farm-agent: queue {request.action}: {mask(reason, secrets)}", file=sys.stderr)
        return EXIT_FAILED


def _missing(config: AgentConfig, request: QueueRequest, dead_letters: Target) -> str:
    if request.action.startswith("dlq") and dead_letters.whose == DeadLetters.TASKS:
        return (
            f"queue {dead_letters.queue} does not exist yet "
            f"(a worker or `farm-agent task submit` creates it; {SHORT_HINT})"
        )
    return (
        f"queue {config.backend.queue} or its dead-letter queue does not exist yet ({SHORT_HINT})"
    )


async def _run(
    config: AgentConfig, request: QueueRequest, dead_letters: Target, ask: Callable[[str], str]
) -> int:
    backend = config.backend
    _, connection = await connect_any(backend, backend.connect_timeout_s)
    try:
        action = request.action
        if action.startswith("dlq") and dead_letters.whose == DeadLetters.TASKS:
            return await _task_dead_letters(connection, config, request, dead_letters, ask)
        if action == "stats":
            return _show(request, await stats(connection, config), _render_stats)
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


async def stats(connection: asyncpg.Connection, config: AgentConfig) -> dict[str, Any]:
    """Both queues' figures, the last hour of tasks, and the task queues (null if none exists)."""
    backend = config.backend
    found = await queue_stats(connection, backend)
    tasks = await task_figures(connection, backend)
    found["last_hour"] = {
        "archived": tasks.archived,
        "dead_lettered": tasks.dead_lettered,
        "processing_p50_s": tasks.processing_p50_s,
        "processing_p95_s": tasks.processing_p95_s,
        "task_success_pct": tasks.task_success_pct,
    }
    section = await read_task_figures(connection, config.tasks)
    found["tasks"] = (
        {
            "queue": config.tasks.queue,
            "dead_letter_queue": config.tasks.dead_letter_queue,
            "workers_alive": section.workers_alive,
            **section.as_json(),
        }
        if section.queues_exist
        else None
    )
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
    if not _confirmed(_purge_question(count, request.limit, "", queue), request, ask):
        return EXIT_FAILED
    purged = await purge_dead_letters(connection, config.backend, request.limit)
    return _show(request, {"purged": purged, "queue": queue}, _render_purged)


async def _task_dead_letters(
    connection: asyncpg.Connection,
    config: AgentConfig,
    request: QueueRequest,
    dead_letters: Target,
    ask: Callable[[str], str],
) -> int:
    """`dlq list|requeue|purge` on the tasks' dead-letter queue, by type if asked."""
    tasks, queue, task_type = config.tasks, dead_letters.queue, dead_letters.task_type
    if request.action == "dlq list":
        found = await task_dead_letters.listing(connection, tasks, task_type, request.limit or 10)
        return _show(request, found, lambda shown: task_dead_letters.render_list(queue, shown))
    if request.action == "dlq requeue":
        requeued = await requeue_dead_letters(
            connection,
            tasks,
            task_type,
            request.limit,
            request.batch_size,
            ids=request.ids or None,
            progress=_show_progress,
        )
        result = task_dead_letters.requeued_json(tasks, requeued)
        return _show(request, result, task_dead_letters.render_requeued)
    if request.action == "dlq purge":
        count = await count_dead_letters(connection, tasks, task_type)
        of_type = f" of type {task_type}" if task_type is not None else ""
        if not _confirmed(_purge_question(count, request.limit, of_type, queue), request, ask):
            return EXIT_FAILED
        purged = await purge_task_dead_letters(connection, tasks, task_type, limit=request.limit)
        result = {"purged": purged, "queue": queue}
        if task_type is not None:
            result["type"] = task_type
        return _show(request, result, _render_purged)
    raise ValueError(f"unknown queue action {request.action!r}")


def _purge_question(count: int, limit: int | None, of_type: str, queue: str) -> str:
    which = f"all {count}" if limit is None or limit >= count else f"the oldest {limit} of {count}"
    return f"Delete {which} dead letters{of_type} in {queue}? [y/N] "


def _confirmed(question: str, request: QueueRequest, ask: Callable[[str], str]) -> bool:
    """Whether the operator said yes (or --yes said it for them)."""
    if request.yes:
        return True
    try:
        answer = ask(question)
    except EOFError:
        answer = ""
    if answer.strip().lower() in ("y", "yes"):
        return True
    print("nothing deleted", file=sys.stderr)
    return False


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

    tasks = stats["tasks"]
    if tasks is None:
        return
    depths = ", ".join(
        f"{priority} {'—' if depth is None else depth}"
        for priority, depth in tasks["depth"].items()
    )
    dead = tasks["dlq_depth"]
    console.print(
        f"[bold]task queues {escape(tasks['queue'])}_*[/]: {depths}; dead letters "
        f"({escape(tasks['dead_letter_queue'])}) {'—' if dead is None else dead}; "
        f"{tasks['workers_alive']} worker(s) alive"
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
    of_type = f" of type {result['type']}" if "type" in result else ""
    print(f"purged {result['purged']} dead letters{of_type} from {result['queue']}")


def _age(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:g} s"
