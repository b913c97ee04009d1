"""The canary: a no-op task sent through the task queue and watched until a worker has done it.

`farm-agent check` uses it to see background task processing end to end: a task of
type `canary` (the built-in no-op handler) goes to `<tasks.queue>_high`, and the
check waits up to `probes.thresholds.processing_s` for a worker to archive it. Only
where a worker is alive (a heartbeat in `farm_resilience.task_workers`): with none
ever heard from, or only ones that stopped cleanly, it is skipped with a note; a
worker that went silent without stopping in the last hour is a failure at once. A
canary not done in time is deleted, so none pile up while no worker runs.
"""

from __future__ import annotations

import asyncio
import time

import asyncpg

from farm_agent.checks import CheckOutcome, skipped
from farm_agent.config import AgentConfig
from farm_agent.database import close_quietly, connect_any
from farm_agent.pgmq import pgmq_table
from farm_agent.tasks import sql
from farm_agent.tasks.envelope import new_envelope
from farm_agent.tasks.figures import ALIVE_HEARTBEATS, WINDOW_S

NAME = "task_roundtrip"
CANARY_TYPE = "canary"
PRIORITY = "high"
# Pauses between looks at the archive, in seconds; the last repeats.
LOOK_PAUSES_S = (0.02, 0.05, 0.1, 0.2)


async def task_roundtrip(config: AgentConfig) -> CheckOutcome:
    """Submit a canary task and wait for a worker to archive it."""
    if CANARY_TYPE not in config.tasks.handlers:
        return skipped(NAME, f"no {CANARY_TYPE} handler (tasks.handlers.{CANARY_TYPE} is null)")
    backend = config.backend
    _, connection = await connect_any(backend, backend.connect_timeout_s)
    try:
        reason = await _no_worker(connection)
        if reason is not None:
            return reason
        return await _round_trip(connection, config)
    finally:
        await close_quietly(connection)


async def _no_worker(connection: asyncpg.Connection) -> CheckOutcome | None:
    """Why no canary is sent (skipped, or failed for a dead worker); None when one is alive."""
    try:
        workers = await connection.fetch(sql.WORKERS_SINCE, WINDOW_S)
    except asyncpg.UndefinedTableError:
        return skipped(NAME, "no task worker has run on this database")
    alive = [w for w in workers if _alive(w)]
    if alive:
        return None
    silent = [w for w in workers if not w["stopped"]]
    if silent:
        last = min(silent, key=lambda worker: worker["last_seen_s"])
        return CheckOutcome(
            NAME,
            False,
            None,
            f"no task worker alive: {last['id']} stopped beating {last['last_seen_s']:.0f} s ago"
            " without saying goodbye",
        )
    return skipped(NAME, "no task worker is running")


def _alive(worker: asyncpg.Record) -> bool:
    return (
        not worker["stopped"] and worker["last_seen_s"] < ALIVE_HEARTBEATS * worker["heartbeat_s"]
    )


async def _round_trip(connection: asyncpg.Connection, config: AgentConfig) -> CheckOutcome:
    queue = config.tasks.queue_for(PRIORITY)
    payload = f'{{"check": "{config.agent_id}"}}'
    envelope = new_envelope(CANARY_TYPE, payload, PRIORITY)
    sent = time.monotonic()
    try:
        msg_id = await connection.fetchval("SELECT pgmq.send($1::text, $2::jsonb)", queue, envelope)
    except asyncpg.UndefinedTableError:
        return CheckOutcome(
            NAME, False, None, f"queue {queue} does not exist: no worker serves tasks.queue"
        )
    limit_s = config.probes.thresholds.processing_s
    where = await _watch(connection, queue, msg_id, sent + limit_s)
    elapsed_ms = (time.monotonic() - sent) * 1000
    if where == "archived":
        return CheckOutcome(NAME, True, elapsed_ms, f"a {CANARY_TYPE} task done by a worker")
    if where == "elsewhere":
        return CheckOutcome(
            NAME, False, elapsed_ms, f"the {CANARY_TYPE} task was dead-lettered, not done"
        )
    await connection.execute("SELECT pgmq.delete($1::text, $2::bigint)", queue, msg_id)
    return CheckOutcome(
        NAME, False, None, f"a {CANARY_TYPE} task not done within {limit_s:g} s ({queue})"
    )


async def _watch(connection: asyncpg.Connection, queue: str, msg_id: int, deadline: float) -> str:
    """`archived`, `elsewhere` (left the queue, not archived) or `waiting` at the deadline."""
    statement = (
        f"SELECT EXISTS (SELECT FROM {pgmq_table('a', queue)} WHERE msg_id = $1) AS archived,"
        f" EXISTS (SELECT FROM {pgmq_table('q', queue)} WHERE msg_id = $1) AS queued"
    )
    pauses = iter(LOOK_PAUSES_S)
    pause = next(pauses)
    while True:
        row = await connection.fetchrow(statement, msg_id)
        assert row is not None  # one row, always
        if row["archived"]:
            return "archived"
        if not row["queued"]:
            return "elsewhere"
        if time.monotonic() + pause >= deadline:
            return "waiting"
        await asyncio.sleep(pause)
        pause = next(pauses, pause)
