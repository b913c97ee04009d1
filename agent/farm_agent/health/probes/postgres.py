"""PostgreSQL probe: `SELECT 1` on each configured route, on connections of the probes' own.

A refusal that means the pool or the database is full is named as such (`pool`).
"""

from __future__ import annotations

from farm_agent import database
from farm_agent.config import BackendConfig
from farm_agent.database import Route
from farm_agent.failures import DATABASE_ERRORS, describe_failure
from farm_agent.health.probes.pool import exhaustion_of
from farm_agent.health.probes.result import ProbeKind, ProbeResult

KIND = ProbeKind.POSTGRES


def probe_name(route: Route) -> str:
    return f"database_{route}"


async def probe_route(route: Route, backend: BackendConfig, timeout_s: float) -> ProbeResult:
    """Time `SELECT 1` on a fresh connection: the query's latency, connecting told apart."""
    dsn = database.routes(backend)[route]
    try:
        answer = await database.select_one(dsn, backend, timeout_s, "farm-agent-probe")
    except DATABASE_ERRORS as err:
        exhausted = exhaustion_of(err)
        detail = describe_failure(err) if exhausted is None else exhausted.sentence
        return ProbeResult(probe_name(route), KIND, False, None, detail)
    detail = f"SELECT 1 in {answer.query_ms:.2f} ms (connect {answer.connect_ms:.1f} ms)"
    return ProbeResult(probe_name(route), KIND, True, answer.query_ms, detail)
