"""Every SQL statement of the tasks: what they need in the database, how a worker reads and settles.

Their tables are defined with the rest of the project's schema (farm_agent/schema/objects.py).
Each way a task is settled is one statement: the PGMQ call and the figures it changes
commit together, so a crash never counts a task that was not settled, nor settles one
twice (a dead letter is sent only for a message this statement deleted).
Only PGMQ functions that Supabase's PGMQ has too are used: read, set_vt with whole
seconds, archive, delete, send_batch, metrics (and create, in farm_agent/schema).
"""

from __future__ import annotations

import asyncpg

from farm_agent.config import AgentConfig, TasksConfig
from farm_agent.histogram import bucket_sql
from farm_agent.pgmq import pgmq_table
from farm_agent.schema import Needs, prepare
from farm_agent.schema.objects import READINGS, TASK_MINUTES, TASK_WORKERS

# Of the first `$2` visible messages of a queue, how many have waited `$1` seconds or more.
OVERDUE_IN = """(
    SELECT count(*) FILTER (WHERE enqueued_at <= now() - make_interval(secs => $1))
    FROM (SELECT enqueued_at FROM {table} WHERE vt <= now() ORDER BY msg_id LIMIT $2) AS head
)"""

_MINUTE = "date_trunc('minute', now())"
_UPSERT = """
    INSERT INTO farm_resilience.task_minutes AS m (minute, type, {columns})
    SELECT {minute}, type, {values} FROM {source} GROUP BY type ORDER BY type
    ON CONFLICT (minute, type) DO UPDATE SET {updates}
"""

# Archive, and count the tasks archived with their latencies: wait (enqueue to start)
# and total (enqueue to this commit, the moment the archive says it was done).
COMPLETE = f"""
WITH archived AS (
    SELECT pgmq.archive($1::text, $2::bigint[]) AS msg_id
), done AS (
    SELECT d.type,
           {bucket_sql("date_part('epoch', d.started_at - d.enqueued_at)")} AS wait_bucket,
           {bucket_sql("date_part('epoch', now() - d.enqueued_at)")} AS total_bucket
    FROM unnest($2::bigint[], $3::text[], $4::timestamptz[], $5::timestamptz[])
         AS d(msg_id, type, enqueued_at, started_at)
    JOIN archived USING (msg_id)
), buckets AS (
    SELECT type, 'wait' AS kind, wait_bucket AS bucket, count(*) AS tasks
    FROM done GROUP BY type, wait_bucket
    UNION ALL
    SELECT type, 'total', total_bucket, count(*) FROM done GROUP BY type, total_bucket
), counted AS (
    INSERT INTO farm_resilience.task_minutes AS m
        (minute, type, succeeded, wait_histogram, total_histogram)
    SELECT {_MINUTE}, type,
           sum(tasks) FILTER (WHERE kind = 'wait'),
           coalesce(jsonb_object_agg(bucket, tasks) FILTER (WHERE kind = 'wait'), '{{}}'),
           coalesce(jsonb_object_agg(bucket, tasks) FILTER (WHERE kind = 'total'), '{{}}')
    FROM buckets GROUP BY type ORDER BY type
    ON CONFLICT (minute, type) DO UPDATE SET
        succeeded = m.succeeded + excluded.succeeded,
        wait_histogram = farm_resilience.histogram_sum(m.wait_histogram, excluded.wait_histogram),
        total_histogram = farm_resilience.histogram_sum(m.total_histogram, excluded.total_histogram)
)
SELECT count(*) FROM archived
"""

# Visible again after each one's backoff (whole seconds: what set_vt takes everywhere).
RETRY = f"""
WITH retried AS (
    SELECT r.type
    FROM unnest($2::bigint[], $3::int[], $4::text[]) AS r(msg_id, delay_s, type)
    CROSS JOIN LATERAL pgmq.set_vt($1::text, r.msg_id, r.delay_s) AS moved
), counted AS (
    {
    _UPSERT.format(
        columns="retried",
        minute=_MINUTE,
        values="count(*)",
        source="retried",
        updates="retried = m.retried + excluded.retried",
    )
}
)
SELECT count(*) FROM retried
"""

# Delete from the task's queue and send to the dead letters in one statement: only what
# this statement deleted is sent, so a retried flush cannot send a dead letter twice.
DEAD_LETTER = f"""
WITH gone AS (
    SELECT pgmq.delete($1::text, $2::bigint[]) AS msg_id
), letters AS (
    SELECT d.ord, d.body, d.type, d.handler_failed
    FROM unnest($2::bigint[], $3::text[], $4::text[], $5::bool[])
         WITH ORDINALITY AS d(msg_id, body, type, handler_failed, ord)
    JOIN gone USING (msg_id)
), sent AS (
    SELECT pgmq.send_batch($6::text, batch.bodies) AS msg_id
    FROM (SELECT array_agg(body::jsonb ORDER BY ord) AS bodies FROM letters) AS batch
    WHERE batch.bodies IS NOT NULL
), counted AS (
    {
    _UPSERT.format(
        columns="dead_lettered, failed",
        minute=_MINUTE,
        source="letters",
        values="count(*), count(*) FILTER (WHERE handler_failed)",
        updates="dead_lettered = m.dead_lettered + excluded.dead_lettered, "
        "failed = m.failed + excluded.failed",
    )
}
)
SELECT count(*) FROM sent
"""

# Keep (or give back, with 0) the leases of messages still being worked on.
SET_LEASE = """
SELECT moved.msg_id
FROM unnest($2::bigint[]) AS l(msg_id)
CROSS JOIN LATERAL pgmq.set_vt($1::text, l.msg_id, $3::int) AS moved
"""

HEARTBEAT = """
INSERT INTO farm_resilience.task_workers AS w
    (id, last_seen, running, concurrency, heartbeat_s, stopped)
VALUES ($1, now(), $2, $3, $4, $5)
ON CONFLICT (id) DO UPDATE SET last_seen = now(), running = excluded.running,
    concurrency = excluded.concurrency, heartbeat_s = excluded.heartbeat_s,
    stopped = excluded.stopped
"""

PRUNE_MINUTES = """
DELETE FROM farm_resilience.task_minutes
WHERE minute < now() - make_interval(secs => $1::float8 * 86400)
"""
PRUNE_WORKERS = """
DELETE FROM farm_resilience.task_workers WHERE last_seen < now() - interval '1 day'
"""

MINUTES_SINCE = """
SELECT type, succeeded, failed, retried, dead_lettered,
       wait_histogram::text AS wait_histogram, total_histogram::text AS total_histogram
FROM farm_resilience.task_minutes
WHERE minute > now() - make_interval(secs => $1)
"""
WORKERS_SINCE = """
SELECT id, extract(epoch FROM now() - last_seen)::float8 AS last_seen_s,
       running, concurrency, heartbeat_s, stopped
FROM farm_resilience.task_workers
WHERE last_seen > now() - make_interval(secs => $1)
ORDER BY id
"""
DEPTH = "SELECT queue_length FROM pgmq.metrics($1::text)"

STORE_READING = """
INSERT INTO farm_resilience.readings (key, agent_id, topic, payload, received_at)
SELECT r ->> 'key', r ->> 'agent_id', r ->> 'topic', r -> 'payload',
       (r ->> 'received_at')::timestamptz
FROM (SELECT $1::jsonb AS r) AS reading
ON CONFLICT (key) DO NOTHING
"""


def read_statement(queues: tuple[str, ...]) -> str:
    """Read up to `$2` messages from `queues` in that order, in one round trip.

    Parameters: $1 the lease in seconds, $2 how many in all, then for each queue its
    name and the most to take from it (NULL: no limit of its own). Each read asks only
    for what the reads before it left, so the first queues get the slots first; a queue
    read when nothing is left to ask for costs no pgmq.read.
    started_at is the database's clock when the read handed the message out.

    No check of its own whether a queue holds anything visible: pgmq.read's query,
    planned afresh at each call, answers that through the index. Both checks tried
    cost a scan of a whole queue at the wrong moment: EXISTS (... WHERE vt <= now()),
    once statistics say every row is visible, walks from the table's start through
    every row archived since the last vacuum; the earliest vt by its index, under a
    plan PostgreSQL kept from when the queue was empty (asyncpg keeps the worker's
    statements prepared on the direct route), sorts the whole queue after a burst.
    """
    reads = []
    for index in range(len(queues)):
        taken = "".join(f" - (SELECT count(*) FROM r{before})::int" for before in range(index))
        name, cap = 3 + 2 * index, 4 + 2 * index
        reads.append(
            f"r{index} AS (SELECT r.* FROM (SELECT least(coalesce(${cap}::int, $2::int), "
            f"$2::int{taken}) AS wanted) AS ask "
            f"CROSS JOIN LATERAL pgmq.read(${name}::text, $1::int, ask.wanted) AS r "
            f"WHERE ask.wanted > 0)"
        )
    rows = " UNION ALL ".join(
        f"SELECT {index} AS queue, msg_id, read_ct, enqueued_at,"
        " vt - make_interval(secs => $1) AS started_at, message::text AS message,"
        f" (message -> 'payload')::text AS payload FROM r{index}"
        for index in range(len(queues))
    )
    return f"WITH {', '.join(reads)} {rows}"


def overdue_statement(queues: tuple[str, ...]) -> str:
    """One row: per queue, how many of its first visible messages are overdue."""
    columns = ",\n".join(
        f'{OVERDUE_IN.format(table=pgmq_table("q", queue))} AS "{index}"'
        for index, queue in enumerate(queues)
    )
    return f"SELECT {columns}"


def task_queues(tasks: TasksConfig) -> tuple[str, ...]:
    """Every queue a worker uses: by priority, the dead letters, then the sources."""
    return (
        *tasks.priority_queues,
        tasks.dead_letter_queue,
        *(source.queue for source in tasks.sources),
    )


async def set_up_tasks(connection: asyncpg.Connection, config: AgentConfig) -> None:
    """Make sure the task tables and queues are there (see farm_agent.schema.prepare)."""
    needs = Needs(tables=(TASK_MINUTES, TASK_WORKERS, READINGS), queues=task_queues(config.tasks))
    await prepare(connection, config, needs)
