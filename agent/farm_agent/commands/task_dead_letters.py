"""`farm-agent queue dlq ... --queue tasks`: which dead-letter queue, and the tasks' shown.

`--queue` names the dead-letter queue by its name or by its queue's: the relay's
(`relay`, `backend.queue` or `backend.dead_letter_queue`, the default) or the tasks'
(`tasks`, `tasks.queue` or `tasks.dead_letter_queue`). `--type` selects task dead
letters by their type; the relay's dead letters are readings, which have none, so it is
refused there. What is done to the queue is `farm_agent.tasks.dead_letters`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import asyncpg
from rich.markup import escape
from rich.table import Table

from farm_agent.commands.check import wide_console
from farm_agent.config import TASK_TYPE_PATTERN, AgentConfig, TasksConfig
from farm_agent.tasks import Requeued, list_dead_letters
from farm_agent.tasks.envelope import NOT_A_TASK

SHOWN_ERROR = 80


class DeadLetters(StrEnum):
    """Whose dead letters a `queue dlq` command works on."""

    RELAY = "relay"
    TASKS = "tasks"


class DeadLetterArgumentError(ValueError):
    """`--queue` or `--type` names something this config does not have."""


@dataclass(frozen=True, slots=True)
class Target:
    """The dead-letter queue a command works on, and the task type it selects."""

    whose: DeadLetters
    queue: str
    task_type: str | None


def target(config: AgentConfig, queue: str | None, task_type: str | None) -> Target:
    """What `--queue` and `--type` select; raises DeadLetterArgumentError naming the value."""
    backend, tasks = config.backend, config.tasks
    relay_names = (DeadLetters.RELAY, backend.queue, backend.dead_letter_queue)
    task_names = (DeadLetters.TASKS, tasks.queue, tasks.dead_letter_queue)
    if queue is None or queue in relay_names:
        whose, name = DeadLetters.RELAY, backend.dead_letter_queue
    elif queue in task_names:
        whose, name = DeadLetters.TASKS, tasks.dead_letter_queue
    else:
        raise DeadLetterArgumentError(
            f"--queue {queue!r}: no such dead-letter queue in this config; use "
            f"{backend.dead_letter_queue} (or 'relay') for the relay's readings, "
            f"{tasks.dead_letter_queue} (or 'tasks') for the tasks"
        )
    if task_type is not None:
        if whose == DeadLetters.RELAY:
            raise DeadLetterArgumentError(
                f"--type works on the tasks' dead letters: add --queue tasks "
                f"(the relay's, in {name}, are readings and have no type)"
            )
        if task_type != NOT_A_TASK and not TASK_TYPE_PATTERN.fullmatch(task_type):
            raise DeadLetterArgumentError(
                f"--type {task_type!r}: a task type is 1-64 characters of a-z, 0-9, '_', "
                f"'.' or '-' (or {NOT_A_TASK} for dead letters that were no task)"
            )
    return Target(whose, name, task_type)


async def listing(
    connection: asyncpg.Connection, tasks: TasksConfig, task_type: str | None, limit: int
) -> list[dict[str, Any]]:
    """The oldest task dead letters, as `dlq list --json` prints them."""
    letters = await list_dead_letters(connection, tasks, task_type, limit)
    return [
        {
            "msg_id": letter.msg_id,
            "enqueued_at": letter.enqueued_at.isoformat(),
            "type": letter.type,
            "error": letter.error,
            "attempts": letter.attempts,
            "failed_at": letter.failed_at,
            "message": letter.body,
        }
        for letter in letters
    ]


def requeued_json(tasks: TasksConfig, requeued: Requeued) -> dict[str, Any]:
    """What `dlq requeue --json` prints: the ids moved, how many to each queue, what stays."""
    return {
        "requeued": list(requeued.msg_ids),
        "to": {
            tasks.queue_for(priority): count
            for priority, count in requeued.by_priority.items()
            if count
        },
        "not_requeuable": requeued.not_requeuable,
    }


def render_list(queue: str, found: list[dict[str, Any]]) -> None:
    table = Table(title=f"{queue}: the oldest {len(found)}")
    for column in ("msg_id", "failed_at", "type", "priority", "attempts", "requeued", "error"):
        table.add_column(column, no_wrap=column not in ("type", "error"))
    for letter in found:
        body = letter["message"]
        table.add_row(
            str(letter["msg_id"]),
            str(letter["failed_at"] or letter["enqueued_at"])[:23],
            escape(letter["type"]),
            escape(str(body.get("priority", "-"))),
            _shown(letter["attempts"]),
            str(body.get("requeued", 0)),
            escape(str(letter["error"] or json.dumps(body))[:SHOWN_ERROR]),
        )
    wide_console().print(table)


def render_requeued(result: dict[str, Any]) -> None:
    count = len(result["requeued"])
    where = ", ".join(f"{queue} ({moved})" for queue, moved in result["to"].items())
    text = f"requeued {count} task dead letter{'s' if count != 1 else ''}"
    if where:
        text += f" to {where}"
    stuck = result["not_requeuable"]
    if stuck:
        text += f"; {stuck} that were no task stay until purged"
    print(text)


def _shown(value: object) -> str:
    return "-" if value is None else str(value)
