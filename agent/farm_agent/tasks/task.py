"""What a handler sees: a task, and the error that sends it straight to the dead letters."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from farm_agent.config import TASK_PRIORITIES, TASK_TYPE_PATTERN

ENVELOPE_VERSION = 1
DEFAULT_PRIORITY = "normal"


class PermanentError(Exception):
    """Raised by a handler for a task that can never succeed: dead-lettered at once, no retry."""


class TaskInputError(ValueError):
    """A task that cannot be submitted as given; the message names the field at fault."""


@dataclass(frozen=True, slots=True)
class Task:
    """One task handed to a handler; delivery is at-least-once, so `id` is for idempotency."""

    id: str
    type: str
    priority: str
    payload: Any
    # PGMQ's read_ct: 1 on the first try, 2 on the first retry...
    attempt: int
    submitted_at: datetime
    # The payload as the queue stores it (JSON text): numbers keep every digit.
    payload_json: str = field(default="null", repr=False)


def check_type(task_type: Any) -> str:
    """The task type, or TaskInputError saying what a type must look like."""
    if not isinstance(task_type, str) or not TASK_TYPE_PATTERN.fullmatch(task_type):
        raise TaskInputError(
            f"type: must be 1-64 characters of a-z, 0-9, '_', '.' or '-' (got {task_type!r})"
        )
    return task_type


def check_priority(priority: Any) -> str:
    if priority not in TASK_PRIORITIES:
        raise TaskInputError(
            f"priority: must be {', '.join(TASK_PRIORITIES[:-1])} or {TASK_PRIORITIES[-1]}"
            f" (got {priority!r})"
        )
    return str(priority)
