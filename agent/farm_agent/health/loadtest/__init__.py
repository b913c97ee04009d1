"""`farm-agent loadtest`: many clients against each database route in turn, and the figures.

Per route: connection time, query p50/p95/p99, errors by kind (pool exhaustion named
in the pooler's words), queries and throughput; then the pooler's speed-up over the
direct connection. The command (`farm_agent.commands.loadtest`) keeps it safe for a
production database: a read-only query, bounded clients and duration, and a prompt
before loading a remote host.
"""

from __future__ import annotations

from farm_agent.config import BackendConfig
from farm_agent.database import Route
from farm_agent.health.loadtest.figures import LoadPlan, LoadReport, Progress, RouteFigures
from farm_agent.health.loadtest.run import ShowProgress, load_route, try_query

DEFAULT_QUERY = "SELECT 1"


async def run_loadtest(
    backend: BackendConfig, routes: list[Route], plan: LoadPlan, show: ShowProgress
) -> LoadReport:
    """Each route in turn, in the order given (pooler first)."""
    found = {}
    for route in routes:
        found[route] = await load_route(route, backend, plan, show)
    return LoadReport(found)


__all__ = [
    "DEFAULT_QUERY",
    "LoadPlan",
    "LoadReport",
    "Progress",
    "RouteFigures",
    "run_loadtest",
    "try_query",
]
