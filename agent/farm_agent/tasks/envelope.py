"""The task envelope, built and read in one place; a relayed reading read as a task; dead letters.

Bodies are composed from the JSON text the queue holds, not from parsed values, so a
payload's numbers reach a dead letter with every digit the sensor or submitter gave.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from farm_agent.tasks.task import (
    DEFAULT_PRIORITY,
    ENVELOPE_VERSION,
    Task,
    TaskInputError,
    check_priority,
    check_type,
)
from farm_agent.timestamps import format_timestamp

# Counted under this type when a message is not a task at all (it can never be a real type).
NOT_A_TASK = "(invalid)"
MAX_ID_LENGTH = 200


# Not frozen: a frozen dataclass sets each field through object.__setattr__, and the
# worker makes one per task.
@dataclass(slots=True)
class Delivery:
    """One message read from a queue: the task in it, or why it is none, and when it started."""

    queue: str
    msg_id: int
    read_ct: int
    enqueued_at: datetime
    # The database's clock when the read handed the message out.
    started_at: datetime
    message_text: str
    task: Task | None
    problem: str | None
    # True for a relay envelope read from one of `tasks.sources`, not a task envelope.
    from_source: bool = False

    @property
    def type_label(self) -> str:
        """The type figures and metrics count this delivery under."""
        return self.task.type if self.task is not None else NOT_A_TASK


def new_envelope(task_type: str, payload_json: str, priority: str = DEFAULT_PRIORITY) -> str:
    """A new task's envelope as JSON text, with a fresh uuid4; the payload text kept as given."""
    head = json.dumps(
        {"v": ENVELOPE_VERSION, "id": str(uuid.uuid4()), "type": task_type, "priority": priority},
        separators=(",", ":"),
    )
    submitted_at = format_timestamp(time.time())
    return f'{head[:-1]},"payload":{payload_json},"submitted_at":"{submitted_at}"}}'


def payload_text(payload: Any) -> str:
    """A payload as JSON text for the queue, or TaskInputError saying why it cannot be one."""
    try:
        text = json.dumps(payload, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as err:
        raise TaskInputError(f"payload: not JSON ({err})") from None
    if "\\u0000" in text:
        raise TaskInputError("payload: contains a \\u0000 character, which PostgreSQL refuses")
    return text


def read_task(message: Any, payload_json: str, attempt: int) -> Task | str:
    """The task in a task envelope, or the reason the message is not one."""
    problem = _envelope_problem(message)
    if problem is not None:
        return f"not a task envelope: {problem}"
    submitted_at = _timestamp(message.get("submitted_at"))
    if submitted_at is None:
        return "not a task envelope: submitted_at must be an ISO 8601 time"
    return Task(
        id=message["id"],
        type=message["type"],
        priority=message.get("priority", DEFAULT_PRIORITY),
        payload=message["payload"],
        attempt=attempt,
        submitted_at=submitted_at,
        payload_json=payload_json,
    )


def _envelope_problem(message: Any) -> str | None:
    if not isinstance(message, dict):
        return "the message is not a JSON object"
    if message.get("v") != ENVELOPE_VERSION:
        return f"v is {message.get('v')!r}, this worker reads 1"
    task_id = message.get("id")
    if not isinstance(task_id, str) or not 0 < len(task_id) <= MAX_ID_LENGTH:
        return "id must be a non-empty string"
    try:
        check_type(message.get("type"))
        check_priority(message.get("priority", DEFAULT_PRIORITY))
    except TaskInputError as err:
        return str(err)
    return None if "payload" in message else "no payload"


def read_reading(message: Any, message_text: str, task_type: str, attempt: int) -> Task | str:
    """A relay envelope from a source queue as a task of `task_type` (payload: the envelope)."""
    if not isinstance(message, dict) or message.get("v") != ENVELOPE_VERSION:
        return "not a reading envelope (a JSON object with v 1)"
    key = message.get("key")
    if not isinstance(key, str) or not 0 < len(key) <= MAX_ID_LENGTH:
        return "not a reading envelope: key must be a non-empty string"
    if not isinstance(message.get("topic"), str) or "payload" not in message:
        return "not a reading envelope: topic and payload are required"
    received_at = _timestamp(message.get("received_at"))
    if received_at is None:
        return "not a reading envelope: received_at must be an ISO 8601 time"
    return Task(
        id=key,
        type=task_type,
        priority=DEFAULT_PRIORITY,
        payload=message,
        attempt=attempt,
        submitted_at=received_at,
        payload_json=message_text,
    )


def _timestamp(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def dead_letter_body(delivery: Delivery, error: str, failed_at: float) -> str:
    """The dead letter of a delivery: the task's fields plus error, attempts, failed_at, queue.

    A message that was no task is kept whole under `message`.
    """
    extra = {
        "error": error,
        "attempts": delivery.read_ct,
        "failed_at": format_timestamp(failed_at),
        "queue": delivery.queue,
    }
    task = delivery.task
    if task is None:
        head = json.dumps({"v": ENVELOPE_VERSION, **extra}, ensure_ascii=False)
        return f'{head[:-1]}, "message": {delivery.message_text}}}'
    if delivery.from_source:
        # A reading from a source queue: the relay envelope becomes the task's payload.
        head = json.dumps(
            {
                "v": ENVELOPE_VERSION,
                "id": task.id,
                "type": task.type,
                "priority": task.priority,
                "submitted_at": task.payload.get("received_at"),
                **extra,
            },
            ensure_ascii=False,
        )
        return f'{head[:-1]}, "payload": {delivery.message_text}}}'
    # A task envelope: every field kept as it was (unknown ones too); later keys win in jsonb.
    tail = json.dumps(extra, ensure_ascii=False)
    return f"{delivery.message_text.rstrip()[:-1]}, {tail[1:]}"
