"""PGMQ as every job uses it: its table names, the set-up lock, and the check that it is there.

Queue names reach SQL only as parameters, or quoted by `pgmq_table`; PGMQ quotes them
into its own table names itself.
"""

from __future__ import annotations

import asyncpg

# Serialises set-up between agents and workers sharing a database (any constant unique
# to us): the relay and the worker both create the farm_resilience schema.
SETUP_LOCK_ID = 0x4641524D


class PgmqMissingError(RuntimeError):
    """The database has no PGMQ: on Supabase, enable the pgmq extension (Integrations > Queues)."""


def pgmq_table(prefix: str, queue: str) -> str:
    """A PGMQ table, quoted: `q` for the queue, `a` for its archive (names are [a-z0-9_])."""
    name = f"{prefix}_{queue}".replace('"', '""')
    return f'pgmq."{name}"'


async def lock_and_require_pgmq(connection: asyncpg.Connection) -> None:
    """Inside a set-up transaction: take the set-up lock, then raise if PGMQ is missing."""
    await connection.execute("SELECT pg_advisory_xact_lock($1)", SETUP_LOCK_ID)
    has_pgmq = await connection.fetchval(
        "SELECT to_regprocedure('pgmq.send_batch(text, jsonb[])') IS NOT NULL"
    )
    if not has_pgmq:
        raise PgmqMissingError(
            "PGMQ is not installed in this database: run CREATE EXTENSION pgmq "
            "(on Supabase: enable Queues)"
        )


async def create_queues(connection: asyncpg.Connection, queues: tuple[str, ...]) -> None:
    """Create each queue unless it exists (pgmq.create is idempotent)."""
    for queue in queues:
        await connection.execute("SELECT pgmq.create($1::text)", queue)
