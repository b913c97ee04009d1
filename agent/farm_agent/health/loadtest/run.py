"""Clients hammering one route: each connects, repeats the query until the time is up.

Every connection is made by `farm_agent.database.connect` (the agent's TLS rules),
apart from the relay's, without a statement cache (transaction-mode poolers). A
failed connect is retried after a short pause; a query that broke the connection
makes the client connect again. Errors are counted by kind; pool exhaustion is
named in the pooler's words (`farm_agent.health.probes.pool`), and for the pooler
with `backend.pooler_admin_dsn` the admin console is read once a second for
clients waiting (`cl_waiting`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import re
import time
from collections.abc import Callable

import asyncpg

from farm_agent import database
from farm_agent.config import BackendConfig
from farm_agent.database import DatabaseTlsError, Route
from farm_agent.failures import DATABASE_ERRORS, is_connection_failure
from farm_agent.health.loadtest.figures import (
    LoadPlan,
    Progress,
    RouteFigures,
    Tally,
    route_figures,
)
from farm_agent.health.probes.pool import exhaustion_of, pool_exhaustion, read_pool

APPLICATION_NAME = "farm-agent-loadtest"
# After a refused or failed connect, a client waits this long before the next try.
RETRY_PAUSE_S = 0.1
PROGRESS_EVERY_S = 1.0
ShowProgress = Callable[[Progress], None]


async def load_route(
    route: Route, backend: BackendConfig, plan: LoadPlan, show: ShowProgress
) -> RouteFigures:
    """`plan.clients` clients on `route` for `plan.duration_s`; then its figures."""
    dsn = database.routes(backend)[route]
    tally = Tally()
    started = time.monotonic()
    deadline = started + plan.duration_s
    console = route == Route.POOLER and backend.pooler_admin_dsn is not None
    watcher = asyncio.create_task(
        _watch(
            route=route,
            backend=backend,
            plan=plan,
            tally=tally,
            started=started,
            console=console,
            show=show,
        )
    )
    try:
        await asyncio.gather(
            *(_client(dsn, backend, plan, deadline, tally) for _ in range(plan.clients))
        )
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
    elapsed = time.monotonic() - started
    show(dataclasses.replace(_progress(route, plan, tally, elapsed), elapsed_s=elapsed, done=True))
    return route_figures(tally, plan.clients, elapsed, console)


async def try_query(route: Route, backend: BackendConfig, plan: LoadPlan) -> None:
    """Run the query once, as the clients will; raises what the server says of it."""
    connection = await _connect(database.routes(backend)[route], backend)
    try:
        await _query(connection, plan, backend.statement_timeout_s)
    finally:
        await database.close_quietly(connection)


async def _client(
    dsn: str, backend: BackendConfig, plan: LoadPlan, deadline: float, tally: Tally
) -> None:
    connection: asyncpg.Connection | None = None
    try:
        while time.monotonic() < deadline:
            if connection is None:
                connection = await _connect_counted(dsn, backend, deadline, tally)
                if connection is None:
                    continue
            began = time.perf_counter()
            try:
                await _query(connection, plan, backend.statement_timeout_s)
            except DATABASE_ERRORS as err:
                _count_error(tally, err, "query")
                if is_connection_failure(err) or connection.is_closed():
                    await database.close_quietly(connection)
                    tally.connected -= 1
                    connection = None
                continue
            tally.queries.add((time.perf_counter() - began) * 1000)
    finally:
        if connection is not None:
            tally.connected -= 1
            await database.close_quietly(connection)


async def _connect_counted(
    dsn: str, backend: BackendConfig, deadline: float, tally: Tally
) -> asyncpg.Connection | None:
    began = time.perf_counter()
    try:
        connection = await _connect(dsn, backend)
    except DATABASE_ERRORS as err:
        _count_error(tally, err, "connect")
        await asyncio.sleep(max(0.0, min(RETRY_PAUSE_S, deadline - time.monotonic())))
        return None
    tally.connects.add((time.perf_counter() - began) * 1000)
    tally.connected += 1
    return connection


async def _connect(dsn: str, backend: BackendConfig) -> asyncpg.Connection:
    return await database.connect(
        dsn,
        backend,
        timeout_s=backend.connect_timeout_s,
        command_timeout_s=backend.statement_timeout_s,
        statement_cache_size=0,
        application_name=APPLICATION_NAME,
    )


async def _query(connection: asyncpg.Connection, plan: LoadPlan, timeout_s: float) -> None:
    if not plan.read_only_transaction:
        await connection.execute(plan.query, timeout=timeout_s)
        return
    # The extended protocol takes one statement only: no "COMMIT; DELETE ..." slips out.
    async with connection.transaction(readonly=True):
        await connection.fetch(plan.query, timeout=timeout_s)


def _count_error(tally: Tally, error: BaseException, phase: str) -> None:
    exhausted = exhaustion_of(error)
    if exhausted is not None:
        tally.errors[exhausted.kind] += 1
        tally.exhaustion.setdefault(exhausted.kind, exhausted.sentence)
        return
    tally.errors[error_kind(error, phase)] += 1


# Errors by what a reader calls them, checked in this order (timeouts are told apart first).
_KINDS: tuple[tuple[type[BaseException] | tuple[type[BaseException], ...], str], ...] = (
    (asyncpg.QueryCanceledError, "statement_timeout"),
    (ConnectionRefusedError, "refused"),
    (DatabaseTlsError, "tls"),
    (
        (asyncpg.InvalidPasswordError, asyncpg.InvalidAuthorizationSpecificationError),
        "login_refused",
    ),
    ((OSError, asyncpg.InterfaceError), "connection_lost"),
)


def error_kind(error: BaseException, phase: str) -> str:
    """A short name for an error, to count it by: `connect_timeout`, `refused`, ..."""
    if isinstance(error, TimeoutError):
        return f"{phase}_timeout"
    for types, kind in _KINDS:
        if isinstance(error, types):
            return kind
    if is_connection_failure(error):
        return "connection_lost"
    name = type(error).__name__.removesuffix("Error")
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower() or "error"


async def _watch(
    *,
    route: Route,
    backend: BackendConfig,
    plan: LoadPlan,
    tally: Tally,
    started: float,
    console: bool,
    show: ShowProgress,
) -> None:
    """Once a second: the progress line, and the pool as the admin console shows it."""
    while True:
        await asyncio.sleep(PROGRESS_EVERY_S)
        if console:
            await _read_console(backend, tally)
        show(_progress(route, plan, tally, time.monotonic() - started))


async def _read_console(backend: BackendConfig, tally: Tally) -> None:
    try:
        figures = await read_pool(backend, PROGRESS_EVERY_S)
    except (*DATABASE_ERRORS, ValueError, LookupError):
        return  # the console is a bonus; the clients' own errors tell the route's story
    if figures.cl_waiting > tally.cl_waiting_max:
        tally.cl_waiting_max = figures.cl_waiting
        sentence = pool_exhaustion(figures)
        if sentence is not None:
            tally.exhaustion["cl_waiting"] = sentence


def _progress(route: Route, plan: LoadPlan, tally: Tally, elapsed_s: float) -> Progress:
    return Progress(
        route=route,
        elapsed_s=min(elapsed_s, plan.duration_s),
        duration_s=plan.duration_s,
        connected=tally.connected,
        queries=tally.queries.count,
        errors=sum(tally.errors.values()),
    )
