"""What the project keeps in the database: PGMQ, its queues, and the `farm_resilience` schema.

The one definition of every table, function and queue the relay and the worker use.
`objects_sql` renders it for a set of queue names; the migration files are it for the
default names, and an agent allowed to manage its schema runs it for its configured
names. Every statement is idempotent. Nothing goes into `public`: Supabase serves that
schema over its REST API, and row level security is on for every table made here, so
nothing is readable with the anon key even if the schema is exposed one day.
"""

from __future__ import annotations

from dataclasses import dataclass

from farm_agent.config import AgentConfig

SCHEMA = "farm_resilience"
# PGMQ is there: any version's send_batch (before 1.5 its last argument had a default).
HAS_PGMQ = (
    "EXISTS (SELECT FROM pg_proc"
    " WHERE pronamespace = to_regnamespace('pgmq') AND proname = 'send_batch')"
)
RELAY_MARKS = f"{SCHEMA}.relay_marks"
TASK_MINUTES = f"{SCHEMA}.task_minutes"
TASK_WORKERS = f"{SCHEMA}.task_workers"
READINGS = f"{SCHEMA}.readings"
# The per-reading ledger of earlier versions; the set-up moves it into relay_marks.
OLD_LEDGER = f"{SCHEMA}.relay_ledger"
PROJECT_TABLES = (RELAY_MARKS, TASK_MINUTES, TASK_WORKERS, READINGS)


@dataclass(frozen=True, slots=True)
class ProjectQueues:
    """The PGMQ queues of a configuration, and which of them hold dead letters."""

    queues: tuple[str, ...]
    dead_letter_queues: tuple[str, ...]

    @classmethod
    def of(cls, config: AgentConfig) -> ProjectQueues:
        """The relay's two queues, the task queues by priority, their dead letters, the sources."""
        backend, tasks = config.backend, config.tasks
        names = (
            backend.queue,
            backend.dead_letter_queue,
            *tasks.priority_queues,
            tasks.dead_letter_queue,
            *(source.queue for source in tasks.sources),
        )
        dead = (backend.dead_letter_queue, tasks.dead_letter_queue)
        return cls(tuple(dict.fromkeys(names)), tuple(dict.fromkeys(dead)))


def default_queues() -> ProjectQueues:
    """The queues of a configuration that names none: what the migration files create."""
    # Only the commands that write SQL need it; the daemons never load the schema's libraries.
    from farm_agent.config_file import parse_config  # noqa: PLC0415

    return ProjectQueues.of(
        parse_config({"agent_id": "farm", "backend": {"direct_dsn": "postgresql://localhost/"}})
    )


def sql_literal(text: str) -> str:
    """`text` as an SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def sql_array(names: tuple[str, ...]) -> str:
    """A `text[]` literal of `names`, one a line (they stand inside a DO block)."""
    items = "".join(f"\n        {sql_literal(name)}," for name in names).rstrip(",")
    return f"ARRAY[{items}\n    ]::text[]"


EXTENSION = """
-- PGMQ, as Supabase Queues enables it. A server that has PGMQ installed from its SQL
-- (no extension to create) keeps that one; a server without PGMQ at all stops here.
DO $$
BEGIN
    IF {has_pgmq} THEN
        RETURN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_available_extensions WHERE name = 'pgmq') THEN
        RAISE EXCEPTION 'PGMQ is not available on this server'
            USING HINT = 'On Supabase enable Queues (Integrations > Queues); elsewhere '
                         'install PGMQ (github.com/pgmq/pgmq); then apply this again.';
    END IF;
    CREATE EXTENSION IF NOT EXISTS pgmq;
END
$$;

CREATE SCHEMA IF NOT EXISTS farm_resilience;
"""

RELAY_TABLES = """
-- The relay's high-water marks: per agent and key space, the highest sequence number
-- the queue has taken (farm_agent/relay/marks.py). One row per key space, not per reading.
CREATE TABLE IF NOT EXISTS farm_resilience.relay_marks (
    agent_id text NOT NULL,
    key_space text NOT NULL,
    last_seq bigint NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (agent_id, key_space)
);
-- Earlier versions kept every key relayed, <agent_id>:<key space>:<seq>, in a ledger;
-- its highest sequence number per key space is that key space's mark.
DO $$
DECLARE
    marks bigint;
BEGIN
    IF to_regclass('farm_resilience.relay_ledger') IS NULL THEN
        RETURN;
    END IF;
    INSERT INTO farm_resilience.relay_marks AS m (agent_id, key_space, last_seq, updated_at)
    SELECT split_part(key, ':', 1), split_part(key, ':', 2),
           max(split_part(key, ':', 3)::bigint), max(relayed_at)
    FROM farm_resilience.relay_ledger
    WHERE key ~ '^[a-z0-9_-]{1,64}:[0-9a-f]+:[0-9]{1,18}$'
    GROUP BY 1, 2
    ON CONFLICT (agent_id, key_space)
        DO UPDATE SET last_seq = greatest(m.last_seq, excluded.last_seq);
    GET DIAGNOSTICS marks = ROW_COUNT;
    DROP TABLE farm_resilience.relay_ledger;
    RAISE NOTICE 'relay ledger replaced by % high-water marks', marks;
END
$$;
"""

TASK_TABLES = """
-- The workers' figures: one row per minute and task type, never one per task: counts
-- and latency histograms ({"bucket": tasks}, see farm_agent/histogram.py).
CREATE TABLE IF NOT EXISTS farm_resilience.task_minutes (
    minute timestamptz NOT NULL,
    type text NOT NULL,
    succeeded bigint NOT NULL DEFAULT 0,
    failed bigint NOT NULL DEFAULT 0,
    retried bigint NOT NULL DEFAULT 0,
    dead_lettered bigint NOT NULL DEFAULT 0,
    wait_histogram jsonb NOT NULL DEFAULT '{}',
    total_histogram jsonb NOT NULL DEFAULT '{}',
    PRIMARY KEY (minute, type)
);
-- One heartbeat row per worker.
CREATE TABLE IF NOT EXISTS farm_resilience.task_workers (
    id text PRIMARY KEY,
    last_seen timestamptz NOT NULL DEFAULT now(),
    running integer NOT NULL,
    concurrency integer NOT NULL,
    heartbeat_s float8 NOT NULL,
    stopped boolean NOT NULL DEFAULT false
);
-- Where the built-in store_readings handler keeps relayed readings, once per key.
CREATE TABLE IF NOT EXISTS farm_resilience.readings (
    key text PRIMARY KEY,
    agent_id text NOT NULL,
    topic text NOT NULL,
    payload jsonb,
    received_at timestamptz NOT NULL,
    stored_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS readings_topic_received_at_idx
    ON farm_resilience.readings (topic, received_at);
-- Adds histogram b (a batch: few buckets) into a, bucket by bucket.
CREATE OR REPLACE FUNCTION farm_resilience.histogram_sum(a jsonb, b jsonb) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    total jsonb := a;
    added record;
BEGIN
    FOR added IN SELECT key, value::bigint AS tasks FROM jsonb_each_text(b) LOOP
        total := total || jsonb_build_object(
            added.key, coalesce((total ->> added.key)::bigint, 0) + added.tasks);
    END LOOP;
    RETURN total;
END
$$;
"""

QUEUES = """
-- The queues (pgmq.create makes pgmq.q_<name> and its archive pgmq.a_<name>).
DO $$
DECLARE
    queue text;
BEGIN
    FOREACH queue IN ARRAY {queues} LOOP
        IF to_regclass(format('pgmq.%I', 'q_' || queue)) IS NULL
           OR to_regclass(format('pgmq.%I', 'a_' || queue)) IS NULL THEN
            PERFORM pgmq.create(queue);
        END IF;
    END LOOP;
END
$$;
"""

ROW_SECURITY = """
-- Row level security on every table made here: a role reads or writes rows only where
-- a policy lets it (the owner, `postgres`, is not bound by it).
DO $$
DECLARE
    target regclass;
BEGIN
    FOREACH target IN ARRAY {tables} LOOP
        IF NOT (SELECT relrowsecurity FROM pg_class WHERE oid = target) THEN
            EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', target);
        END IF;
    END LOOP;
END
$$;
"""


def queue_tables(queues: ProjectQueues) -> tuple[str, ...]:
    """Each queue's table and its archive, as PGMQ names them."""
    return tuple(f"pgmq.{prefix}_{queue}" for queue in queues.queues for prefix in ("q", "a"))


def row_secured_tables(queues: ProjectQueues) -> str:
    """A `regclass[]` expression of every table the set-up makes."""
    return f"{sql_array((*PROJECT_TABLES, *queue_tables(queues)))}::regclass[]"


def objects_sql(queues: ProjectQueues) -> str:
    """PGMQ, the schema, its tables and function, and `queues`, all with row level security."""
    return "".join(
        (
            EXTENSION.format(has_pgmq=HAS_PGMQ),
            RELAY_TABLES,
            TASK_TABLES,
            QUEUES.format(queues=sql_array(queues.queues)),
            ROW_SECURITY.format(tables=row_secured_tables(queues)),
        )
    )
