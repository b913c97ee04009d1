"""Who may use what the project keeps: the role `farm_agent` and exactly its rights.

The relay, the probes, the queue commands and the worker need to send, read, archive
and delete on their own queues (PGMQ's functions, which run with the caller's rights,
and the queue tables under them), to write their own rows in the project's tables,
and to read the figures the probes count. Nothing else: no CREATE anywhere, no other
schema, no queue made or dropped (only the owner can; the migration makes them). The
role cannot log in: each farm host gets a login role of its own, `IN ROLE farm_agent`,
so one host's password can be changed or revoked alone (docs/supabase.md).
"""

from __future__ import annotations

from farm_agent.schema.objects import (
    PROJECT_TABLES,
    READINGS,
    SCHEMA,
    ProjectQueues,
    row_secured_tables,
    sql_array,
)

ROLE = "farm_agent"
# The PGMQ functions the agent calls, and the ones they call in turn.
PGMQ_FUNCTIONS = (
    "send",
    "send_batch",
    "_send_batch",
    "_validate_batch_params",
    "read",
    "set_vt",
    "archive",
    "delete",
    "purge_queue",
    "metrics",
    "format_table_name",
)
POLICY = "farm_agent_rows"

ROLE_SQL = f"""
-- The agent's role. LOGIN is left to you: CREATE ROLE <host> LOGIN PASSWORD '...' IN ROLE {ROLE}.
DO $$
BEGIN
    CREATE ROLE {ROLE} NOLOGIN;
EXCEPTION WHEN duplicate_object THEN
    NULL;  -- made by an earlier run: kept as it is
END
$$;
GRANT USAGE ON SCHEMA {SCHEMA}, pgmq TO {ROLE};
-- Marks, figures and heartbeats are written, read back and pruned. Readings are only
-- written: of them the role reads just the key, which INSERT ... ON CONFLICT looks up.
GRANT SELECT, INSERT, UPDATE, DELETE ON {", ".join(t for t in PROJECT_TABLES if t != READINGS)}
    TO {ROLE};
GRANT INSERT, SELECT (key) ON {READINGS} TO {ROLE};
GRANT EXECUTE ON FUNCTION {SCHEMA}.histogram_sum(jsonb, jsonb) TO {ROLE};
DO $$
DECLARE
    granted regprocedure;
BEGIN
    FOR granted IN
        SELECT p.oid::regprocedure FROM pg_proc AS p
        WHERE p.pronamespace = 'pgmq'::regnamespace AND p.proname = ANY ({{functions}})
    LOOP
        EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO {ROLE}', granted);
    END LOOP;
END
$$;
"""

QUEUES_SQL = f"""
-- Its queues: send, read, set_vt, archive and delete write the queue table; metrics
-- reads it and its sequence; the archive is written by archive and counted by the
-- probes. Dead letters may be purged (pgmq.purge_queue truncates).
DO $$
DECLARE
    queue text;
BEGIN
    FOREACH queue IN ARRAY {{queues}} LOOP
        EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON pgmq.%I TO {ROLE}', 'q_' || queue);
        EXECUTE format('GRANT SELECT ON SEQUENCE pgmq.%I TO {ROLE}',
                       'q_' || queue || '_msg_id_seq');
        EXECUTE format('GRANT SELECT, INSERT ON pgmq.%I TO {ROLE}', 'a_' || queue);
    END LOOP;
    FOREACH queue IN ARRAY {{dead_letter_queues}} LOOP
        EXECUTE format('GRANT TRUNCATE ON pgmq.%I TO {ROLE}', 'q_' || queue);
    END LOOP;
END
$$;
"""

POLICIES_SQL = f"""
-- Row level security lets {ROLE} at every row of these tables, and no other role
-- but the owner: granting anon or authenticated SELECT would still show them nothing.
DO $$
DECLARE
    target regclass;
BEGIN
    FOREACH target IN ARRAY {{tables}} LOOP
        IF NOT EXISTS (SELECT FROM pg_policy WHERE polrelid = target AND polname = '{POLICY}') THEN
            EXECUTE format(
                'CREATE POLICY {POLICY} ON %s TO {ROLE} USING (true) WITH CHECK (true)', target
            );
        END IF;
    END LOOP;
END
$$;
"""


def access_sql(queues: ProjectQueues) -> str:
    """The role, its grants on the project's tables and on `queues`, and its policies."""
    return "".join(
        (
            ROLE_SQL.format(functions=sql_array(PGMQ_FUNCTIONS)),
            QUEUES_SQL.format(
                queues=sql_array(queues.queues),
                dead_letter_queues=sql_array(queues.dead_letter_queues),
            ),
            POLICIES_SQL.format(tables=row_secured_tables(queues)),
        )
    )
