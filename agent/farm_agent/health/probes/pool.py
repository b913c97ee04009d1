"""The pooler's pool: how full it is, and exhaustion named in the pooler's own words.

A pooler that runs out of server connections queues its clients (PgBouncer's
`cl_waiting`) until they time out, or refuses them outright: PgBouncer's "no more
connections allowed (max_client_conn)", Supavisor's "max clients reached" and
"pool timeout", PostgreSQL's "too many connections" (SQLSTATE 53300). `exhaustion_of`
recognises those errors, and `read_pool` reads PgBouncer's admin console (the
optional `backend.pooler_admin_dsn`, a secret) for the figures, so the probe and
`farm-agent loadtest` can say "pool exhausted" with the figure instead of a
generic timeout.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from farm_agent.config import BackendConfig
from farm_agent.health.probes.result import PoolFigures, PoolReport, ProbeResult
from farm_agent.simple_query import Row, simple_query

# Problems that start with these words keep their figures when judged (not cut at ':').
EXHAUSTION_WORDS = ("pool exhausted", "too many connections")
TOO_MANY_CONNECTIONS = "53300"
_NO_MORE = re.compile(r"no more connections allowed \((\w+)\)", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Exhaustion:
    """A refusal recognised as exhaustion: a short kind (for counting) and the sentence."""

    kind: str
    sentence: str


def exhaustion_of(error: BaseException) -> Exhaustion | None:
    """The exhaustion an error reports, if it is one, in the pooler's words."""
    text = str(error).lower()
    limit = _NO_MORE.search(str(error))
    if limit is not None:
        return Exhaustion(
            limit.group(1),
            f"pool exhausted: PgBouncer refused the client: no more connections allowed"
            f" ({limit.group(1)})",
        )
    if "query_wait_timeout" in text:
        return Exhaustion(
            "query_wait_timeout",
            "pool exhausted: PgBouncer gave up waiting for a server connection"
            " (query_wait_timeout)",
        )
    if "max client" in text or "emaxclients" in text:
        return Exhaustion(
            "max_clients_reached",
            "pool exhausted: Supavisor refused the client: max clients reached",
        )
    if "checkout" in text or "check out" in text or "pool timeout" in text:
        return Exhaustion(
            "pool_timeout",
            "pool exhausted: Supavisor pool timeout: no server connection free in time",
        )
    sqlstate = getattr(error, "sqlstate", None)
    if (
        sqlstate == TOO_MANY_CONNECTIONS
        or "too many clients" in text
        or "slots are reserved" in text
    ):
        return Exhaustion(
            "too_many_connections",
            "too many connections: PostgreSQL refused a new connection (SQLSTATE 53300)",
        )
    return None


def is_exhaustion(detail: str) -> bool:
    """Whether a probe's detail names exhaustion (then it is shown whole, with its figure)."""
    return detail.startswith(EXHAUSTION_WORDS)


def pool_exhaustion(figures: PoolFigures) -> str | None:
    """The sentence when the admin console shows the pool exhausted, else None.

    Exhausted: clients wait and every server connection of the pool is busy. A client
    also waits, briefly, while PgBouncer opens a server connection for it: no exhaustion.
    """
    size = figures.pool_size
    if figures.cl_waiting > 0 and size is not None and figures.sv_active >= size:
        return (
            f"pool exhausted: {_clients(figures.cl_waiting)} waiting for a server connection"
            f" (cl_waiting; longest {figures.maxwait_s:.1f} s), {figures.sv_active} of {size}"
            " server connections busy"
        )
    if figures.max_client_conn and (figures.clients or 0) >= figures.max_client_conn:
        return (
            f"pool exhausted: {figures.clients} of {figures.max_client_conn} client connections"
            " (max_client_conn)"
        )
    return None


async def read_pool(backend: BackendConfig, timeout_s: float) -> PoolFigures:
    """The pool of the pooler DSN's database and user, from PgBouncer's admin console."""
    assert backend.pooler_admin_dsn is not None
    pools, databases, config, lists = await simple_query(
        backend.pooler_admin_dsn,
        backend,
        ("SHOW POOLS", "SHOW DATABASES", "SHOW CONFIG", "SHOW LISTS"),
        timeout_s,
    )
    target = urlsplit(backend.pooler_dsn or "")
    database, user = target.path.lstrip("/"), unquote(target.username or "")
    mine = [row for row in pools if row.get("database") == database and row.get("user") == user]
    sizes = [_int(row, "pool_size") for row in databases if row.get("name") == database]
    settings = {row.get("key"): row.get("value") for row in config}
    counts = {row.get("list"): row.get("items") for row in lists}
    return PoolFigures(
        pool_size=sizes[0] if sizes else _number(settings.get("default_pool_size")),
        sv_active=sum(_int(row, "sv_active") for row in mine),
        sv_idle=sum(_int(row, "sv_idle") for row in mine),
        cl_active=sum(_int(row, "cl_active") for row in mine),
        cl_waiting=sum(_int(row, "cl_waiting") for row in mine),
        maxwait_s=max(
            (_int(row, "maxwait") + _int(row, "maxwait_us") / 1e6 for row in mine), default=0.0
        ),
        clients=_number(counts.get("used_clients")),
        max_client_conn=_number(settings.get("max_client_conn")),
    )


def with_pool(result: ProbeResult, report: PoolReport) -> ProbeResult:
    """The pooler probe's result with the pool; a failure the pool explains says so first."""
    figures = report.figures
    exhausted = None if figures is None else pool_exhaustion(figures)
    detail = result.detail
    if exhausted is not None and not result.ok and not is_exhaustion(detail):
        detail = f"{exhausted}; {detail}"
    elif report.unknown is not None:
        detail = f"{detail}; pool unknown: {report.unknown}"
    elif figures is not None:
        size = "?" if figures.pool_size is None else figures.pool_size
        detail = f"{detail}; pool {figures.sv_active} of {size} busy, {figures.cl_waiting} waiting"
    return ProbeResult(
        result.name,
        result.kind,
        result.ok,
        result.latency_ms,
        detail,
        result.cache,
        report,
    )


def _clients(count: int) -> str:
    return f"{count} client" if count == 1 else f"{count} clients"


def _int(row: Row, key: str) -> int:
    return _number(row.get(key)) or 0


def _number(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None
