"""Submitting tasks: from any asyncio program (`submit`), or many at once, all or nothing.

Every task is checked before anything is sent: a bad type, priority or payload raises
TaskInputError naming the field (and the line, for a file), and no task is sent.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from farm_agent.config import QUEUE_NAME_PATTERN, TASK_PRIORITIES, AgentConfig, BackendTlsConfig
from farm_agent.database import choose_tls, close_quietly, connect_any, ssl_argument
from farm_agent.failures import describe_failure
from farm_agent.pgmq import create_queues
from farm_agent.schema import SchemaMissingError, manages_schema, migration_hint
from farm_agent.tasks.envelope import new_envelope, payload_text
from farm_agent.tasks.task import DEFAULT_PRIORITY, TaskInputError, check_priority, check_type

DEFAULT_QUEUE = "farm_tasks"
LINE_KEYS = frozenset({"type", "priority", "payload"})


@dataclass(frozen=True, slots=True)
class TaskRequest:
    """A task checked and ready to send: its type, priority and payload as JSON text."""

    type: str
    priority: str
    payload_json: str


def task_request(task_type: Any, payload: Any, priority: Any = DEFAULT_PRIORITY) -> TaskRequest:
    """Check one task; TaskInputError names the field at fault."""
    return TaskRequest(check_type(task_type), check_priority(priority), payload_text(payload))


def read_task_lines(lines: Iterable[str], source: str) -> list[TaskRequest]:
    """Tasks from JSON lines ({"type", "priority", "payload"}); blank lines are skipped.

    Every line is checked; the first bad one raises TaskInputError naming it.
    """
    requests = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            requests.append(_task_line(line))
        except TaskInputError as err:
            raise TaskInputError(f"{source} line {number}: {err}") from None
    if not requests:
        raise TaskInputError(f"{source}: no tasks in it")
    return requests


def _task_line(line: str) -> TaskRequest:
    try:
        fields = json.loads(line, parse_constant=_no_constant)
    except ValueError as err:
        raise TaskInputError(f"not JSON ({err})") from None
    if not isinstance(fields, dict):
        raise TaskInputError('expected an object {"type": ..., "priority": ..., "payload": ...}')
    unknown = sorted(set(fields) - LINE_KEYS)
    if unknown:
        raise TaskInputError(f"unknown key {unknown[0]!r} (expected type, priority, payload)")
    if "type" not in fields:
        raise TaskInputError("type: required")
    return task_request(
        fields["type"], fields.get("payload"), fields.get("priority", DEFAULT_PRIORITY)
    )


def parse_payload(text: str) -> Any:
    """A payload given as JSON text (the CLI's --payload)."""
    try:
        return json.loads(text, parse_constant=_no_constant)
    except ValueError as err:
        raise TaskInputError(f"payload: not JSON ({err})") from None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


async def submit(
    conn_or_dsn: asyncpg.Connection | str,
    type: str,
    payload: Any,
    priority: str = DEFAULT_PRIORITY,
    *,
    queue: str = DEFAULT_QUEUE,
) -> str:
    """Submit one task; returns its id. `queue` is the config's `tasks.queue`."""
    ids = await submit_many(conn_or_dsn, [task_request(type, payload, priority)], queue=queue)
    return ids[0]


async def submit_many(
    conn_or_dsn: asyncpg.Connection | str,
    requests: Sequence[TaskRequest],
    *,
    queue: str = DEFAULT_QUEUE,
    create_missing: bool = True,
) -> list[str]:
    """Submit tasks in one transaction (all or none); returns their ids in the same order.

    The priority queues are created when missing, unless `create_missing` is false
    (`backend.manage_schema` off): then a missing queue raises SchemaMissingError.
    """
    _check_queue(queue)
    envelopes = [new_envelope(r.type, r.payload_json, r.priority) for r in requests]
    if isinstance(conn_or_dsn, str):
        # No config here: the default TLS rules (a remote host is never plaintext).
        tls = ssl_argument(choose_tls(conn_or_dsn, BackendTlsConfig(ca_file=None, mode=None)))
        connection = await asyncpg.connect(conn_or_dsn, ssl=tls, statement_cache_size=0)
        try:
            await _send(connection, queue, requests, envelopes, create_missing)
        finally:
            await connection.close()
    else:
        await _send(conn_or_dsn, queue, requests, envelopes, create_missing)
    return [json.loads(envelope)["id"] for envelope in envelopes]


async def submit_configured(config: AgentConfig, requests: Sequence[TaskRequest]) -> list[str]:
    """Submit with the agent's config: its routes (pooler first), TLS rules and task queue."""
    backend = config.backend
    _, connection = await connect_any(backend, backend.connect_timeout_s)
    try:
        return await submit_many(
            connection,
            requests,
            queue=config.tasks.queue,
            create_missing=manages_schema(backend),
        )
    finally:
        await close_quietly(connection)


async def _send(
    connection: asyncpg.Connection,
    queue: str,
    requests: Sequence[TaskRequest],
    envelopes: list[str],
    may_create: bool,
) -> None:
    by_priority: dict[str, list[str]] = defaultdict(list)
    for request, envelope in zip(requests, envelopes, strict=True):
        by_priority[request.priority].append(envelope)
    try:
        await _send_batches(connection, queue, by_priority)
    except asyncpg.UndefinedTableError as err:
        # The queues do not exist yet (no worker ran): create them and send again.
        if not may_create:
            raise SchemaMissingError(
                f"task queues {queue}_high, _normal, _low: {describe_failure(err)}: "
                f"{migration_hint()} (backend.manage_schema is false)"
            ) from err
        queues = tuple(f"{queue}_{priority}" for priority in TASK_PRIORITIES)
        try:
            await create_queues(connection, queues)
        except asyncpg.InsufficientPrivilegeError as refused:
            raise SchemaMissingError(
                f"task queues {queue}_high, _normal, _low are missing and this role may not "
                f"create them: {migration_hint()}"
            ) from refused
        await _send_batches(connection, queue, by_priority)


async def _send_batches(
    connection: asyncpg.Connection, queue: str, by_priority: dict[str, list[str]]
) -> None:
    async with connection.transaction():
        for priority, bodies in by_priority.items():
            await connection.execute(
                "SELECT pgmq.send_batch($1::text, $2::text[]::jsonb[])",
                f"{queue}_{priority}",
                bodies,
            )


def _check_queue(queue: str) -> None:
    if not QUEUE_NAME_PATTERN.fullmatch(queue) or len(queue) > 40:
        raise TaskInputError(f"queue: not a task queue name (got {queue!r})")
