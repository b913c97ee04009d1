"""SQL the agent runs: schema set-up, the exactly-once batch, ledger pruning.

Queue names reach SQL only as parameters; PGMQ quotes them into table names itself.
"""

from __future__ import annotations

import asyncpg

LEDGER_TABLE = "farm_resilience.relay_ledger"
# Serialises set-up between agents sharing a database (any constant unique to us).
SETUP_LOCK_ID = 0x4641524D

SET_UP_SCHEMA = """
CREATE SCHEMA IF NOT EXISTS farm_resilience;
CREATE TABLE IF NOT EXISTS farm_resilience.relay_ledger (
    key text PRIMARY KEY,
    relayed_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS relay_ledger_relayed_at_idx
    ON farm_resilience.relay_ledger (relayed_at);
"""

# One statement, one round trip, atomic: record the keys in the ledger and send only
# the readings whose key was new. A batch resent after a crash between commit and
# spool delete finds its keys taken and sends nothing again.
SEND_BATCH = """
WITH batch AS (
    SELECT b.key, b.body, b.ord
    FROM unnest($2::text[], $3::text[]) WITH ORDINALITY AS b(key, body, ord)
), fresh AS (
    INSERT INTO farm_resilience.relay_ledger (key)
    SELECT key FROM batch
    ON CONFLICT (key) DO NOTHING
    RETURNING key
), bodies AS (
    SELECT array_agg(batch.body::jsonb ORDER BY batch.ord) AS messages
    FROM batch JOIN fresh USING (key)
)
SELECT (SELECT count(*) FROM pgmq.send_batch($1::text, bodies.messages))
FROM bodies
WHERE bodies.messages IS NOT NULL
"""

PRUNE_LEDGER = """
WITH old AS (
    SELECT key FROM farm_resilience.relay_ledger
    WHERE relayed_at < now() - make_interval(secs => $1::float8)
    LIMIT $2
)
DELETE FROM farm_resilience.relay_ledger l USING old WHERE l.key = old.key
"""


class PgmqMissingError(RuntimeError):
    """The database has no PGMQ: on Supabase, enable the pgmq extension (Integrations > Queues)."""


async def set_up_schema(connection: asyncpg.Connection, queues: tuple[str, ...]) -> None:
    """Create the ledger and the queues if missing; safe to run by several agents at once."""
    async with connection.transaction():
        await connection.execute("SELECT pg_advisory_xact_lock($1)", SETUP_LOCK_ID)
        has_pgmq = await connection.fetchval(
            "SELECT to_regprocedure('pgmq.send_batch(text, jsonb[])') IS NOT NULL"
        )
        if not has_pgmq:
            raise PgmqMissingError(
                "PGMQ is not installed in this database: run CREATE EXTENSION pgmq "
                "(on Supabase: enable Queues)"
            )
        await connection.execute(SET_UP_SCHEMA)
        for queue in queues:
            await connection.execute("SELECT pgmq.create($1::text)", queue)


async def send_batch(
    connection: asyncpg.Connection, queue: str, keys: list[str], bodies: list[str]
) -> int:
    """Send the readings not yet in the ledger; returns how many were new."""
    sent = await connection.fetchval(SEND_BATCH, queue, keys, bodies)
    return int(sent or 0)


async def prune_ledger(connection: asyncpg.Connection, retention_s: float, limit: int) -> int:
    """Delete up to `limit` ledger keys older than the retention; returns how many went."""
    status = await connection.execute(PRUNE_LEDGER, retention_s, limit)
    return int(status.split()[-1])
