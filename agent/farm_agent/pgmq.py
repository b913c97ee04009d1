"""PGMQ as every job uses it: its table names, and queues made on demand.

Queue names reach SQL only as parameters, or quoted by `pgmq_table`; PGMQ quotes them
into its own table names itself. What the project keeps in PGMQ, and who may use it,
is in farm_agent/schema.
"""

from __future__ import annotations

import asyncpg


def pgmq_table(prefix: str, queue: str) -> str:
    """A PGMQ table, quoted: `q` for the queue, `a` for its archive (names are [a-z0-9_])."""
    name = f"{prefix}_{queue}".replace('"', '""')
    return f'pgmq."{name}"'


async def create_queues(connection: asyncpg.Connection, queues: tuple[str, ...]) -> None:
    """Create each queue unless it exists (pgmq.create is idempotent)."""
    for queue in queues:
        await connection.execute("SELECT pgmq.create($1::text)", queue)
