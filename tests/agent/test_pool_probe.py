"""The pooler probe on a real PgBouncer: pool utilisation, and exhaustion named with its figure."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import asyncpg
import pytest

from farm_agent.config import AgentConfig
from farm_agent.config_file import parse_config
from farm_agent.health.probes.pool import exhaustion_of
from tests.agent.support import judge, result_named, running_prober
from tests.support.agent import with_secret
from tools.services import PgBouncer, Postgres

ConfigMaker = Callable[..., dict[str, Any]]


def small_pool_config(
    make_config: ConfigMaker,
    small_pgbouncer: PgBouncer,
    *,
    admin: bool = True,
    timeout_s: float = 5,
) -> AgentConfig:
    backend: dict[str, Any] = {"pooler_dsn": with_secret(small_pgbouncer.dsn)}
    if admin:
        backend["pooler_admin_dsn"] = with_secret(small_pgbouncer.admin_dsn)
    return parse_config(make_config(backend=backend, probes={"timeout_s": timeout_s}))


@contextlib.asynccontextmanager
async def clients(dsn: str, count: int) -> AsyncIterator[list[asyncpg.Connection]]:
    """`count` open client connections to `dsn`, closed at the end."""
    opened = [await asyncpg.connect(dsn, statement_cache_size=0) for _ in range(count)]
    try:
        yield opened
    finally:
        for connection in opened:
            connection.terminate()


async def test_the_pooler_probe_shows_the_pools_utilisation_from_the_admin_console(
    make_config: ConfigMaker, pgbouncer: PgBouncer
) -> None:
    admin = {"pooler_admin_dsn": with_secret(pgbouncer.admin_dsn)}
    config = parse_config(make_config(backend=admin))
    async with clients(pgbouncer.dsn, 1) as (busy,), running_prober(config) as prober:
        # An open transaction keeps one server connection assigned for the round.
        transaction = busy.transaction()
        await transaction.start()
        await busy.execute("SELECT 1")
        found = await prober.run_round()
        await transaction.rollback()

    pooler = result_named(found, "database_pooler")
    assert pooler.ok, pooler.detail
    pool = pooler.as_json()["pool"]
    assert pool["pool_size"] == 40
    assert pool["sv_active"] >= 1
    assert pool["utilisation"] == round(pool["sv_active"] / 40, 3)
    # A client waits while PgBouncer opens a server connection for it: no exhaustion.
    assert pool["cl_waiting"] >= 0
    assert pool["clients"] >= 2
    assert pool["max_client_conn"] == 500
    assert not [p for p in judge(config, found).problems if "pool exhausted" in p]


async def test_without_an_admin_console_the_pool_is_null_and_direct_has_no_pool_at_all(
    make_config: ConfigMaker, small_pgbouncer: PgBouncer
) -> None:
    config = small_pool_config(make_config, small_pgbouncer, admin=False)
    async with running_prober(config) as prober:
        found = await prober.run_round()

    assert result_named(found, "database_pooler").as_json()["pool"] is None
    assert "pool" not in result_named(found, "database_direct").as_json()


async def test_clients_queued_by_an_exhausted_pool_are_named_instead_of_a_timeout(
    make_config: ConfigMaker, small_pgbouncer: PgBouncer
) -> None:
    config = small_pool_config(make_config, small_pgbouncer, timeout_s=1)
    async with clients(small_pgbouncer.dsn, 3) as (first, second, waiting):
        # Both server connections busy, and a third client already queued behind them.
        busy = [
            asyncio.create_task(connection.execute("SELECT pg_sleep(2)"))
            for connection in (first, second)
        ]
        await asyncio.sleep(0.2)
        queued = asyncio.create_task(waiting.execute("SELECT 1"))
        await asyncio.sleep(0.2)
        async with running_prober(config) as prober:
            found = await prober.run_round()
        await asyncio.gather(*busy, queued, return_exceptions=True)

    pooler = result_named(found, "database_pooler")
    assert not pooler.ok
    assert pooler.detail.startswith("pool exhausted: ")
    assert "waiting for a server connection (cl_waiting; longest" in pooler.detail
    assert "2 of 2 server connections busy" in pooler.detail
    assert pooler.detail.endswith("; no answer within 1 s")
    problem = next(p for p in judge(config, found).problems if p.startswith("pooler down"))
    assert problem.startswith("pooler down: pool exhausted: ")
    assert "waiting for a server connection" in problem


async def test_a_pooler_refusing_clients_at_max_client_conn_is_named_in_its_words(
    make_config: ConfigMaker, small_pgbouncer: PgBouncer
) -> None:
    config = small_pool_config(make_config, small_pgbouncer, admin=False)
    async with clients(small_pgbouncer.dsn, 12), running_prober(config) as prober:
        found = await prober.run_round()

    pooler = result_named(found, "database_pooler")
    expected = (
        "pool exhausted: PgBouncer refused the client: no more connections allowed"
        " (max_client_conn)"
    )
    assert pooler.detail == expected
    assert f"pooler down: {expected}" in judge(config, found).problems


async def test_a_database_out_of_connection_slots_says_too_many_connections(
    make_config: ConfigMaker, postgres: Postgres, test_id: str
) -> None:
    role = f"r{test_id[:20]}"
    admin = await asyncpg.connect(postgres.dsn)
    try:
        await admin.execute(
            f"DROP ROLE IF EXISTS {role}; CREATE ROLE {role} LOGIN CONNECTION LIMIT 1"
        )
        limited = postgres.dsn.replace("postgres@", f"{role}@")
        config = parse_config(make_config(backend={"pooler_dsn": None, "direct_dsn": limited}))
        async with clients(limited, 1), running_prober(config) as prober:
            found = await prober.run_round()
    finally:
        await admin.execute(f"DROP ROLE IF EXISTS {role}")
        await admin.close()

    direct = result_named(found, "database_direct")
    assert direct.detail == (
        "too many connections: PostgreSQL refused a new connection (SQLSTATE 53300)"
    )


@pytest.mark.parametrize(
    ("message", "kind", "words"),
    [
        ("Max client connections reached", "max_clients_reached", "max clients reached"),
        (
            "(EMAXCLIENTSESSION) max clients reached in session mode",
            "max_clients_reached",
            "max clients reached",
        ),
        (
            "(ECHECKOUTTIMEOUT) unable to check out connection from the pool after 5000ms",
            "pool_timeout",
            "Supavisor pool timeout",
        ),
        ("sorry, too many clients already", "too_many_connections", "too many connections"),
        ("no more connections allowed (max_db_connections)", "max_db_connections", "(max_db_"),
    ],
)
def test_supavisor_and_postgres_refusals_are_recognised_as_exhaustion(
    message: str, kind: str, words: str
) -> None:
    found = exhaustion_of(asyncpg.PostgresError(message))

    assert found is not None
    assert found.kind == kind
    assert words in found.sentence


def test_other_errors_are_not_taken_for_exhaustion() -> None:
    assert exhaustion_of(ConnectionRefusedError("Connect call failed")) is None
    assert exhaustion_of(asyncpg.PostgresError('relation "x" does not exist')) is None
