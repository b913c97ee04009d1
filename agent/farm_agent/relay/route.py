"""The backend route: the Supavisor pooler first, the direct connection when it keeps failing.

After `failover_after` consecutive failures on the pooler the relay moves to the
direct DSN (if that one answers), keeps probing the pooler every
`failback_interval_s`, and moves back after `failback_after` healthy probes in a row.
A failure is anything that keeps a route from giving a working session: a refused or
timed-out connection, a login the pooler refuses (a wrong password, Supavisor's
"Tenant or user not found"), a session the server ends. A statement the database
refuses is not: that is the data's problem, and another route would refuse it too.
The health probes' verdicts count like the relay's own attempts (`probed`), so an
idle relay leaves a dead pooler, and comes back to it, just as a busy one does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

import asyncpg

from farm_agent import database
from farm_agent.config import BackendConfig
from farm_agent.database import Route
from farm_agent.failures import describe_failure, is_connection_failure
from farm_agent.masking import redact_dsn
from farm_agent.relay.metrics import RelayMetrics

_LOGGER = logging.getLogger(__name__)

POOLER, DIRECT, NONE = Route.POOLER, Route.DIRECT, Route.NONE

SetUp = Callable[[asyncpg.Connection], Awaitable[None]]


class NoRouteError(ConnectionError):
    """No route to the database works at the moment."""


@dataclass
class _Route:
    name: Route
    dsn: str
    pooled: bool
    connection: asyncpg.Connection | None = None
    failures: int = 0
    last_error: str | None = field(default=None)


class BackendRouter:
    """Hands out a connection on the active route and moves between routes on failure."""

    def __init__(
        self,
        config: BackendConfig,
        metrics: RelayMetrics,
        set_up: SetUp,
        on_route_change: Callable[[], None] | None = None,
    ) -> None:
        self._config = config
        self._metrics = metrics
        self._set_up = set_up
        self._on_route_change = on_route_change
        self._routes = {
            name: _Route(name, dsn, pooled=name == POOLER)
            for name, dsn in database.routes(config).items()
        }
        self.active = NONE
        self._on_fallback = False
        # Healthy pooler probes in a row while on the direct route (failback's and health's).
        self._pooler_answers = 0
        self.fallbacks_total = 0
        self._failback_task: asyncio.Task[None] | None = None
        for route in self._routes.values():
            warning = database.tls_warning(route.name, route.dsn, config.tls)
            if warning is not None:
                _LOGGER.warning("backend TLS: %s", warning)

    async def connect(self, name: Route) -> asyncpg.Connection:
        """A fresh connection on one route, not yet set up; raises on failure."""
        route = self._routes[name]
        return await database.connect(
            route.dsn,
            self._config,
            timeout_s=self._config.connect_timeout_s,
            command_timeout_s=self._config.statement_timeout_s,
            # Transaction-mode poolers hand each transaction to another server
            # connection, where a named prepared statement does not exist.
            statement_cache_size=0 if route.pooled else 100,
            application_name="farm-agent",
        )

    async def connection(self) -> tuple[Route, asyncpg.Connection]:
        """The active route's connection, connecting (and choosing a route) when needed.

        Raises NoRouteError after a failed attempt; the caller backs off and asks again.
        A set-up statement the database refuses propagates as it is.
        """
        target = self.active if self.active != NONE else self._next_candidate()
        route = self._routes[target]
        if route.connection is not None and not route.connection.is_closed():
            return target, route.connection
        try:
            connection = await self.connect(target)
        except Exception as err:  # no session at all, whatever the reason: the route fails
            self.failed(target, err)
            raise NoRouteError(self._unavailable_reason()) from err
        try:
            await self._set_up(connection)
        except Exception as err:
            connection.terminate()
            if not is_connection_failure(err):
                raise
            self.failed(target, err)
            raise NoRouteError(self._unavailable_reason()) from err
        route.connection = connection
        self._activate(target)
        return target, connection

    def _next_candidate(self) -> Route:
        """The preferred route that has not failed `failover_after` times in a row."""
        preferred = self._preferred()
        if preferred is not None:
            return preferred
        # Every route keeps failing: start over from the preferred one.
        for route in self._routes.values():
            route.failures = 0
        return next(iter(self._routes))

    def _preferred(self) -> Route | None:
        limit = self._config.failover_after
        return next((route.name for route in self._routes.values() if route.failures < limit), None)

    def failed(self, name: Route, error: BaseException) -> None:
        """A connection failure on `name`: after `failover_after` in a row, leave that route."""
        self._drop(self._routes[name])
        self._count_failure(name, describe_failure(error))

    def discard(self, name: Route) -> None:
        """Close a route's connection without counting a failure; the next one is set up afresh."""
        self._drop(self._routes[name])

    def succeeded(self, name: Route) -> None:
        route = self._routes[name]
        route.failures = 0
        route.last_error = None

    def probed(self, verdicts: Mapping[Route, str | None]) -> None:
        """The health probes' verdicts: per route, None if it answered, else why it did not.

        They count like the relay's own attempts, failures first: a route that keeps
        failing is left even while no reading needs it, and a route that answers is
        taken when the relay has none, or returned to when it is the pooler.
        """
        answered = [name for name, error in verdicts.items() if error is None]
        for name, error in verdicts.items():
            if error is not None and name in self._routes:
                if name == POOLER:
                    self._pooler_answers = 0
                self._count_failure(name, error)
        for name in answered:
            if name not in self._routes:
                continue
            self.succeeded(name)
            if name == POOLER and self._on_fallback:
                self._pooler_answered()
            elif self.active == NONE and name == self._preferred():
                _LOGGER.info("backend route %s answers the health probe", name)
                self._activate(name)

    def _count_failure(self, name: Route, reason: str) -> None:
        route = self._routes[name]
        route.failures += 1
        if reason != route.last_error:
            _LOGGER.warning("backend route %s (%s): %s", name, redact_dsn(route.dsn), reason)
        route.last_error = reason
        if route.failures >= self._config.failover_after and self.active == name:
            _LOGGER.error(
                "backend route %s failed %d times in a row; %s",
                name,
                route.failures,
                "trying the direct connection"
                if name == POOLER and DIRECT in self._routes
                else "retrying with backoff",
            )
            self._drop(route)
            self._set_active(NONE)

    def _activate(self, name: Route) -> None:
        previous = self.active
        self._set_active(name)
        if name == DIRECT and POOLER in self._routes:
            if not self._on_fallback:
                self._on_fallback = True
                self._pooler_answers = 0
                self.fallbacks_total += 1
                self._metrics.fallbacks.inc()
                _LOGGER.warning(
                    "backend route: pooler -> direct (%s); probing the pooler every %g s",
                    redact_dsn(self._routes[DIRECT].dsn),
                    self._config.failback_interval_s,
                )
            self._start_failback()
        elif name == POOLER:
            self._on_fallback = False
        if previous == NONE and not (name == DIRECT and POOLER in self._routes):
            _LOGGER.info("backend route: %s (%s)", name, redact_dsn(self._routes[name].dsn))

    def _set_active(self, name: Route) -> None:
        changed = name != self.active
        self.active = name
        self._metrics.set_route(name)
        if changed and self._on_route_change is not None:
            self._on_route_change()

    def _unavailable_reason(self) -> str:
        return "; ".join(
            f"{route.name}: {route.last_error or 'not tried yet'}"
            for route in self._routes.values()
        )

    def _drop(self, route: _Route) -> None:
        if route.connection is not None:
            route.connection.terminate()
            route.connection = None

    def _start_failback(self) -> None:
        if self._failback_task is None or self._failback_task.done():
            self._failback_task = asyncio.get_running_loop().create_task(self._failback())

    async def _failback(self) -> None:
        """While on the direct route, probe the pooler until it is back (see `_pooler_answered`)."""
        while True:
            await asyncio.sleep(self._config.failback_interval_s)
            if not self._on_fallback:  # the health probes brought the pooler back meanwhile
                return
            if await self._pooler_answers_now():
                self.succeeded(POOLER)
                self._pooler_answered()
            else:
                self._pooler_answers = 0

    def _pooler_answered(self) -> None:
        """One more healthy pooler probe in a row; after `failback_after`, return to it."""
        self._pooler_answers += 1
        if self._pooler_answers < self._config.failback_after or self.active == POOLER:
            return
        _LOGGER.info(
            "backend route: %s -> pooler (%s answered %d probes in a row)",
            self.active,
            redact_dsn(self._routes[POOLER].dsn),
            self._pooler_answers,
        )
        self._drop(self._routes[DIRECT])
        self._on_fallback = False
        self._set_active(POOLER)

    async def _pooler_answers_now(self) -> bool:
        """`SELECT 1` on a fresh pooler connection; a failure is noted, not counted."""
        route = self._routes[POOLER]
        try:
            await database.select_one(
                route.dsn, self._config, self._config.connect_timeout_s, "farm-agent-failback"
            )
        except Exception as err:  # whatever keeps the pooler from answering: not back yet
            route.last_error = describe_failure(err)
            return False
        return True

    async def close(self) -> None:
        if self._failback_task is not None:
            self._failback_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._failback_task
        for route in self._routes.values():
            if route.connection is not None:
                with contextlib.suppress(Exception):
                    await route.connection.close(timeout=2)
                route.connection = None
