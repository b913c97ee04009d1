-- Farm Resilience: farm_resilience (20261202000000_farm_resilience.sql).
-- Generated from agent/farm_agent/schema by `python -m tools.write_migrations`: change it
-- there; tests/agent/test_supabase_setup.py fails when the two differ. Idempotent:
-- applying it again is harmless. For other queue names than these, apply the SQL of
-- `farm-agent sql --config PATH` instead:
--   sensor_readings
--   sensor_readings_dlq
--   farm_tasks_high
--   farm_tasks_normal
--   farm_tasks_low
--   farm_tasks_dlq

-- PGMQ, as Supabase Queues enables it. A server that has PGMQ installed from its SQL
-- (no extension to create) keeps that one; a server without PGMQ at all stops here.
DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_proc WHERE pronamespace = to_regnamespace('pgmq') AND proname = 'send_batch') THEN
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

-- The queues (pgmq.create makes pgmq.q_<name> and its archive pgmq.a_<name>).
DO $$
DECLARE
    queue text;
BEGIN
    FOREACH queue IN ARRAY ARRAY[
        'sensor_readings',
        'sensor_readings_dlq',
        'farm_tasks_high',
        'farm_tasks_normal',
        'farm_tasks_low',
        'farm_tasks_dlq'
    ]::text[] LOOP
        IF to_regclass(format('pgmq.%I', 'q_' || queue)) IS NULL
           OR to_regclass(format('pgmq.%I', 'a_' || queue)) IS NULL THEN
            PERFORM pgmq.create(queue);
        END IF;
    END LOOP;
END
$$;

-- Row level security on every table made here: a role reads or writes rows only where
-- a policy lets it (the owner, `postgres`, is not bound by it).
DO $$
DECLARE
    target regclass;
BEGIN
    FOREACH target IN ARRAY ARRAY[
        'farm_resilience.relay_marks',
        'farm_resilience.task_minutes',
        'farm_resilience.task_workers',
        'farm_resilience.readings',
        'pgmq.q_sensor_readings',
        'pgmq.a_sensor_readings',
        'pgmq.q_sensor_readings_dlq',
        'pgmq.a_sensor_readings_dlq',
        'pgmq.q_farm_tasks_high',
        'pgmq.a_farm_tasks_high',
        'pgmq.q_farm_tasks_normal',
        'pgmq.a_farm_tasks_normal',
        'pgmq.q_farm_tasks_low',
        'pgmq.a_farm_tasks_low',
        'pgmq.q_farm_tasks_dlq',
        'pgmq.a_farm_tasks_dlq'
    ]::text[]::regclass[] LOOP
        IF NOT (SELECT relrowsecurity FROM pg_class WHERE oid = target) THEN
            EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', target);
        END IF;
    END LOOP;
END
$$;

-- The agent's role. LOGIN is left to you: CREATE ROLE <host> LOGIN PASSWORD '...' IN ROLE farm_agent.
DO $$
BEGIN
    CREATE ROLE farm_agent NOLOGIN;
EXCEPTION WHEN duplicate_object THEN
    NULL;  -- made by an earlier run: kept as it is
END
$$;
GRANT USAGE ON SCHEMA farm_resilience, pgmq TO farm_agent;
-- Marks, figures and heartbeats are written, read back and pruned. Readings are only
-- written: of them the role reads just the key, which INSERT ... ON CONFLICT looks up.
GRANT SELECT, INSERT, UPDATE, DELETE ON farm_resilience.relay_marks, farm_resilience.task_minutes, farm_resilience.task_workers
    TO farm_agent;
GRANT INSERT, SELECT (key) ON farm_resilience.readings TO farm_agent;
GRANT EXECUTE ON FUNCTION farm_resilience.histogram_sum(jsonb, jsonb) TO farm_agent;
DO $$
DECLARE
    granted regprocedure;
BEGIN
    FOR granted IN
        SELECT p.oid::regprocedure FROM pg_proc AS p
        WHERE p.pronamespace = 'pgmq'::regnamespace AND p.proname = ANY (ARRAY[
        'send',
        'send_batch',
        '_send_batch',
        '_validate_batch_params',
        'read',
        'set_vt',
        'archive',
        'delete',
        'purge_queue',
        'metrics',
        'format_table_name'
    ]::text[])
    LOOP
        EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO farm_agent', granted);
    END LOOP;
END
$$;

-- Its queues: send, read, set_vt, archive and delete write the queue table; metrics
-- reads it and its sequence; the archive is written by archive and counted by the
-- probes. Dead letters may be purged (pgmq.purge_queue truncates).
DO $$
DECLARE
    queue text;
BEGIN
    FOREACH queue IN ARRAY ARRAY[
        'sensor_readings',
        'sensor_readings_dlq',
        'farm_tasks_high',
        'farm_tasks_normal',
        'farm_tasks_low',
        'farm_tasks_dlq'
    ]::text[] LOOP
        EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON pgmq.%I TO farm_agent', 'q_' || queue);
        EXECUTE format('GRANT SELECT ON SEQUENCE pgmq.%I TO farm_agent',
                       'q_' || queue || '_msg_id_seq');
        EXECUTE format('GRANT SELECT, INSERT ON pgmq.%I TO farm_agent', 'a_' || queue);
    END LOOP;
    FOREACH queue IN ARRAY ARRAY[
        'sensor_readings_dlq',
        'farm_tasks_dlq'
    ]::text[] LOOP
        EXECUTE format('GRANT TRUNCATE ON pgmq.%I TO farm_agent', 'q_' || queue);
    END LOOP;
END
$$;

-- Row level security lets farm_agent at every row of these tables, and no other role
-- but the owner: granting anon or authenticated SELECT would still show them nothing.
DO $$
DECLARE
    target regclass;
BEGIN
    FOREACH target IN ARRAY ARRAY[
        'farm_resilience.relay_marks',
        'farm_resilience.task_minutes',
        'farm_resilience.task_workers',
        'farm_resilience.readings',
        'pgmq.q_sensor_readings',
        'pgmq.a_sensor_readings',
        'pgmq.q_sensor_readings_dlq',
        'pgmq.a_sensor_readings_dlq',
        'pgmq.q_farm_tasks_high',
        'pgmq.a_farm_tasks_high',
        'pgmq.q_farm_tasks_normal',
        'pgmq.a_farm_tasks_normal',
        'pgmq.q_farm_tasks_low',
        'pgmq.a_farm_tasks_low',
        'pgmq.q_farm_tasks_dlq',
        'pgmq.a_farm_tasks_dlq'
    ]::text[]::regclass[] LOOP
        IF NOT EXISTS (SELECT FROM pg_policy WHERE polrelid = target AND polname = 'farm_agent_rows') THEN
            EXECUTE format(
                'CREATE POLICY farm_agent_rows ON %s TO farm_agent USING (true) WITH CHECK (true)', target
            );
        END IF;
    END LOOP;
END
$$;
