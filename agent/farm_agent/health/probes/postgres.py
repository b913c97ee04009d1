"""PostgreSQL probe: `SELECT 1` on each configured route, on connections of the probes' own."""

from __future__ import annotations

import contextlib
import time

import asyncpg

from farm_agent import database
from farm_agent.config import BackendConfig
from farm_agent.health.probes.result import ProbeResult
from farm_agent.relay.route import DIRECT, POOLER, describe_failure

KIND = "postgres"
# What a broken route or a refusing server raises; anything else is a bug and propagates.
DATABASE_ERRORS = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)


def routes(backend: BackendConfig) -> dict[str, str]:
    """The configured routes and their DSNs, pooler first (the relay's preference)."""
    found = {POOLER: backend.pooler_dsn, DIRECT: backend.direct_dsn}
    return {name: dsn for name, dsn in found.items() if dsn}


def pgmq_table(prefix: str, queue: str) -> str:
    """A PGMQ table, quoted: `q` for the queue, `a` for its archive (names are [a-z0-9_])."""
    name = f"{prefix}_{queue}".replace('"', '""')
    return f'pgmq."{name}"'


def probe_name(route: str) -> str:
    return f"database_{route}"


async def connect(dsn: str, backend: BackendConfig, timeout_s: float) -> asyncpg.Connection:
    """A fresh connection apart from the relay's; no statement cache, so poolers are fine."""
    return await database.connect(
        dsn,
        backend,
        timeout_s=timeout_s,
        command_timeout_s=timeout_s,
        statement_cache_size=0,
        application_name="farm-agent-probe",
    )


async def close_quietly(connection: asyncpg.Connection) -> None:
    """Say goodbye to the server (no "unexpected EOF" in its log), or just drop the socket."""
    try:
        await connection.close(timeout=1)
    except Exception:
        with contextlib.suppress(Exception):
            connection.terminate()


async def connect_any(
    backend: BackendConfig, timeout_s: float, prefer: str | None = None
) -> tuple[str, asyncpg.Connection]:
    """A connection on the preferred route, else on the first configured one that answers."""
    configured = routes(backend)
    order = sorted(configured, key=lambda name: name != prefer)
    error: BaseException | None = None
    for name in order:
        try:
            return name, await connect(configured[name], backend, timeout_s)
        except DATABASE_ERRORS as err:
            error = err
    assert error is not None
    raise error


async def probe_route(route: str, backend: BackendConfig, timeout_s: float) -> ProbeResult:
    """Time `SELECT 1` on a fresh connection: the query's latency, connecting told apart."""
    started = time.perf_counter()
    try:
        connection = await connect(routes(backend)[route], backend, timeout_s)
    except DATABASE_ERRORS as err:
        return ProbeResult(probe_name(route), KIND, False, None, describe_failure(err))
    connected = time.perf_counter()
    try:
        await connection.fetchval("SELECT 1")
        answered = time.perf_counter()
    except DATABASE_ERRORS as err:
        return ProbeResult(probe_name(route), KIND, False, None, describe_failure(err))
    finally:
        await close_quietly(connection)
    query_ms = (answered - connected) * 1000
    connect_ms = (connected - started) * 1000
    detail = f"SELECT 1 in {query_ms:.2f} ms (connect {connect_ms:.1f} ms)"
    return ProbeResult(probe_name(route), KIND, True, query_ms, detail)
