"""The relay's SQL: what it needs in the database, the exactly-once batch, the high-water marks.

Readings leave one spool in order, so what the queue has taken from a key space is
one number: the highest sequence number committed, its high-water mark. A batch
advances the mark and sends only the readings above it, in the same statement; a
batch resent after a crash between the commit and the spool delete finds them all
at or below the mark and sends nothing again. One row per agent and key space:
the marks do not grow with the number of readings relayed. The table itself is
defined with the rest of the project's schema, in farm_agent/schema/objects.py.
"""

from __future__ import annotations

import asyncpg

from farm_agent.config import AgentConfig
from farm_agent.schema import Needs, prepare
from farm_agent.schema.objects import OLD_LEDGER, RELAY_MARKS

# One statement, one round trip, atomic: advance the key space's mark and send the
# readings (and dead letters) above the old mark, each to its queue, in order.
SEND_BATCH = """
WITH batch AS (
    SELECT b.seq, b.body, b.dead, b.ord
    FROM unnest($5::int8[], $6::text[], $7::bool[]) WITH ORDINALITY AS b(seq, body, dead, ord)
), mark AS (
    SELECT coalesce(max(last_seq), 0) AS last_seq FROM farm_resilience.relay_marks
    WHERE agent_id = $3 AND key_space = $4
), advanced AS (
    INSERT INTO farm_resilience.relay_marks AS m (agent_id, key_space, last_seq)
    SELECT $3, $4, max(seq) FROM batch
    ON CONFLICT (agent_id, key_space) DO UPDATE
        SET last_seq = greatest(m.last_seq, excluded.last_seq), updated_at = now()
), fresh AS (
    SELECT batch.* FROM batch, mark WHERE batch.seq > mark.last_seq
), readings AS (
    SELECT array_agg(body::jsonb ORDER BY ord) AS messages FROM fresh WHERE NOT dead
), dead_letters AS (
    SELECT array_agg(body::jsonb ORDER BY ord) AS messages FROM fresh WHERE dead
)
SELECT
    coalesce((SELECT (SELECT count(*) FROM pgmq.send_batch($1::text, r.messages))
              FROM readings r WHERE r.messages IS NOT NULL), 0),
    coalesce((SELECT (SELECT count(*) FROM pgmq.send_batch($2::text, d.messages))
              FROM dead_letters d WHERE d.messages IS NOT NULL), 0)
"""

# Marks of key spaces the spool no longer holds, untouched for the retention period.
PRUNE_MARKS = """
DELETE FROM farm_resilience.relay_marks
WHERE agent_id = $1 AND NOT key_space = ANY($2::text[])
  AND updated_at < now() - make_interval(secs => $3::float8)
"""

HIGHEST_MARK = """
SELECT key_space, last_seq FROM farm_resilience.relay_marks
WHERE agent_id = $1 ORDER BY last_seq DESC LIMIT 1
"""


async def set_up_schema(connection: asyncpg.Connection, config: AgentConfig) -> None:
    """Make sure the marks and both queues are there (see farm_agent.schema.prepare)."""
    backend = config.backend
    needs = Needs(
        tables=(RELAY_MARKS,),
        queues=(backend.queue, backend.dead_letter_queue),
        gone=(OLD_LEDGER,),
    )
    await prepare(connection, config, needs)


async def send_batch(
    connection: asyncpg.Connection,
    *,
    queues: tuple[str, str],
    agent_id: str,
    key_space: str,
    seqs: list[int],
    bodies: list[str],
    dead: list[bool],
) -> tuple[int, int]:
    """Send the readings above the key space's mark; returns (relayed, dead-lettered)."""
    row = await connection.fetchrow(
        SEND_BATCH, queues[0], queues[1], agent_id, key_space, seqs, bodies, dead
    )
    assert row is not None
    return int(row[0]), int(row[1])


async def highest_mark(connection: asyncpg.Connection, agent_id: str) -> tuple[str, int] | None:
    """This agent's highest mark and its key space; None before its first reading."""
    row = await connection.fetchrow(HIGHEST_MARK, agent_id)
    return None if row is None else (str(row["key_space"]), int(row["last_seq"]))


async def prune_marks(
    connection: asyncpg.Connection,
    agent_id: str,
    keep: tuple[str, ...],
    retention_s: float,
) -> int:
    """Delete this agent's marks of finished key spaces older than the retention."""
    status = await connection.execute(PRUNE_MARKS, agent_id, list(keep), retention_s)
    return int(status.split()[-1])
