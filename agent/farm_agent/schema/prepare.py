"""An agent's own look at the database before it works: is everything it needs there?

Each job names what it needs (`Needs`): tables, queues, and old tables that must be
gone. At every new connection the job checks them (one query). If all is there,
nothing else happens: no lock, no DDL, so a role without owner rights runs fine. If
something is missing, an agent whose `backend.manage_schema` is on makes it (the
migrations' objects, for its configured queue names, under a lock that serialises
agents and workers); with it off, it makes nothing and raises SchemaMissingError
naming what is missing and the migration that adds it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from urllib.parse import urlsplit

import asyncpg

from farm_agent.config import AgentConfig, BackendConfig
from farm_agent.database import is_loopback, routes
from farm_agent.failures import describe_failure, is_connection_failure
from farm_agent.schema.migrations import managed_sql, migration_hint
from farm_agent.schema.objects import HAS_PGMQ, OLD_LEDGER, ProjectQueues

_LOGGER = logging.getLogger(__name__)

# Serialises set-up between agents and workers sharing a database (any constant unique to us).
SETUP_LOCK_ID = 0x4641524D
# Moving an old ledger of millions of keys into marks reads it whole, once.
SETUP_TIMEOUT_S = 3600.0

FIND_PROBLEMS = f"""
SELECT
    {HAS_PGMQ} AS has_pgmq,
    current_user AS role,
    ARRAY(SELECT t FROM unnest($1::text[]) AS t WHERE to_regclass(t) IS NULL) AS missing_tables,
    ARRAY(SELECT t FROM unnest($1::text[]) AS t
          WHERE NOT coalesce(has_table_privilege(to_regclass(t), 'INSERT'), true))
        AS refused_tables,
    ARRAY(SELECT q FROM unnest($2::text[]) AS q
          WHERE to_regclass(format('pgmq.%I', 'q_' || q)) IS NULL
             OR to_regclass(format('pgmq.%I', 'a_' || q)) IS NULL) AS missing_queues,
    ARRAY(SELECT q FROM unnest($2::text[]) AS q
          WHERE NOT coalesce(
              has_table_privilege(to_regclass(format('pgmq.%I', 'q_' || q)), 'INSERT')
              AND has_table_privilege(to_regclass(format('pgmq.%I', 'q_' || q)), 'UPDATE')
              AND has_table_privilege(to_regclass(format('pgmq.%I', 'a_' || q)), 'INSERT'),
              true)) AS refused_queues,
    ARRAY(SELECT t FROM unnest($3::text[]) AS t WHERE to_regclass(t) IS NOT NULL) AS left_over
"""


class SchemaMissingError(RuntimeError):
    """Something the agent needs is not in the database, and the agent may not or cannot make it."""


@dataclass(frozen=True, slots=True)
class Needs:
    """What one job needs in the database: tables it writes, its queues, tables gone."""

    tables: tuple[str, ...]
    queues: tuple[str, ...]
    gone: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Problems:
    """What the check found wanting, as sentences; none at all when `ok`."""

    role: str
    found: tuple[str, ...]
    old_ledger: bool

    @property
    def ok(self) -> bool:
        return not self.found


def manages_schema(backend: BackendConfig) -> bool:
    """`backend.manage_schema`; unset, on when every DSN's host is this machine (a demo)."""
    if backend.manage_schema is not None:
        return backend.manage_schema
    return all(is_loopback(urlsplit(dsn).hostname or "") for dsn in routes(backend).values())


async def prepare(connection: asyncpg.Connection, config: AgentConfig, needs: Needs) -> None:
    """Return when everything in `needs` is there (made now if the agent may); else raise."""
    problems = await find_problems(connection, needs)
    if problems.ok:
        return
    if not manages_schema(config.backend):
        raise SchemaMissingError(
            f"{'; '.join(problems.found)}: {migration_hint()} "
            "(backend.manage_schema is false: the agent changes no schema itself)"
        )
    await _make(connection, config, problems)
    still = await find_problems(connection, needs)
    if not still.ok:
        raise SchemaMissingError(f"{'; '.join(still.found)}: {migration_hint()}")


async def find_problems(connection: asyncpg.Connection, needs: Needs) -> Problems:
    """One query: what of `needs` is missing, refused to this role, or left over."""
    row = await connection.fetchrow(
        FIND_PROBLEMS, list(needs.tables), list(needs.queues), list(needs.gone)
    )
    assert row is not None
    role = str(row["role"])
    found: list[str] = []
    if not row["has_pgmq"]:
        found.append("PGMQ is not installed (on Supabase: enable Queues, Integrations > Queues)")
    found.extend(f"table {table} is missing" for table in row["missing_tables"])
    found.extend(f"queue {queue} is missing" for queue in row["missing_queues"])
    found.extend(f"role {role} may not write to {table}" for table in row["refused_tables"])
    found.extend(f"role {role} may not use queue {queue}" for queue in row["refused_queues"])
    found.extend(f"{table} of an earlier version is still there" for table in row["left_over"])
    return Problems(role, tuple(found), OLD_LEDGER in row["left_over"])


async def _make(connection: asyncpg.Connection, config: AgentConfig, problems: Problems) -> None:
    """Run the migrations' objects for the configured queues, once among agents at a time."""
    _LOGGER.info("setting up the database (%s)", "; ".join(problems.found))
    if problems.old_ledger:
        _LOGGER.info("moving the relay ledger into high-water marks (once)")
    try:
        async with connection.transaction():
            await connection.execute("SELECT pg_advisory_xact_lock($1)", SETUP_LOCK_ID)
            await connection.execute(managed_sql(ProjectQueues.of(config)), timeout=SETUP_TIMEOUT_S)
    except asyncpg.PostgresError as err:
        if is_connection_failure(err):
            raise
        raise SchemaMissingError(
            f"cannot set up the database as role {problems.role} ({describe_failure(err)}): "
            f"{migration_hint()}, or give the agent an owner's role"
        ) from err
    if problems.old_ledger:
        _LOGGER.info("relay ledger replaced by high-water marks; %s dropped", OLD_LEDGER)
