"""The worker's database: a small pool on the pooler, on the direct DSN while the pooler fails.

The same preference as the relay's route: after `backend.failover_after` connection
failures in a row the worker moves to the direct DSN, tries the pooler again every
`backend.failback_interval_s`, and moves back as soon as it answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, cast

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from farm_agent.config import BackendConfig
from farm_agent.database import Route, choose_tls, routes, ssl_argument
from farm_agent.failures import describe_failure, is_connection_failure
from farm_agent.masking import redact_dsn

_LOGGER = logging.getLogger(__name__)

SetUp = Callable[[asyncpg.Connection], Awaitable[None]]


class TaskDatabase:
    """Connections for the worker and its handlers; knows which route is in use."""

    def __init__(self, backend: BackendConfig, size: int, set_up: SetUp) -> None:
        self._backend = backend
        self._dsns = routes(backend)
        self._size = size
        self._set_up = set_up
        self._set_up_done = False
        self._pool: asyncpg.Pool | None = None
        self._kept: dict[str, tuple[asyncpg.Pool, PoolConnectionProxy]] = {}
        self._pool_lock = asyncio.Lock()
        self.route = next(iter(self._dsns))
        self._failures = 0
        self._last_error: str | None = None
        self._pooler_tried_at = 0.0
        self.ok = False

    @contextlib.asynccontextmanager
    async def connection(self, keep: str | None = None) -> AsyncIterator[asyncpg.Connection]:
        """A pooled connection; a connection failure inside counts against the route.

        With `keep`, that caller gets the same connection each time, held between uses
        until something fails: the worker's own loops skip the pool's acquire and
        reset round trips (handlers get a connection reset for them each time).
        """
        try:
            pool = await self._current_pool()
            if keep is None:
                async with pool.acquire(timeout=self._backend.connect_timeout_s) as connection:
                    # A pool's proxy answers like the connection it wraps.
                    yield cast(asyncpg.Connection, connection)
            else:
                yield await self._kept_connection(pool, keep)
        except BaseException as err:
            if keep is not None:
                await self._release_kept(keep)
            if isinstance(err, Exception) and is_connection_failure(err):
                await self._failed(err)
            raise
        self._succeeded()

    async def _kept_connection(self, pool: asyncpg.Pool, keep: str) -> asyncpg.Connection:
        held = self._kept.get(keep)
        if held is None or held[0] is not pool:
            held = (pool, await pool.acquire(timeout=self._backend.connect_timeout_s))
            self._kept[keep] = held
        return cast(asyncpg.Connection, held[1])

    async def _release_kept(self, keep: str) -> None:
        held = self._kept.pop(keep, None)
        if held is not None and held[0] is self._pool:
            with contextlib.suppress(Exception):
                await held[0].release(held[1], timeout=1)

    async def _current_pool(self) -> asyncpg.Pool:
        async with self._pool_lock:
            if self.route == Route.DIRECT and Route.POOLER in self._dsns:
                await self._try_pooler_again()
            if self._pool is None:
                self._pool = await self._open(self.route)
            return self._pool

    def _connect_options(self, route: Route) -> dict[str, Any]:
        """How every connection of a route is opened: the pool's and the pooler probe's."""
        dsn = self._dsns[route]
        return {
            "dsn": dsn,
            # The relay's TLS rules: a remote host never falls back to plaintext.
            "ssl": ssl_argument(choose_tls(dsn, self._backend.tls)),
            "timeout": self._backend.connect_timeout_s,
            "command_timeout": self._backend.statement_timeout_s,
            # Transaction-mode poolers hand each transaction to another server connection.
            "statement_cache_size": 0 if route == Route.POOLER else 100,
            "server_settings": {"application_name": "farm-agent-worker"},
        }

    async def _open(self, route: Route) -> asyncpg.Pool:
        pool = await asyncpg.create_pool(
            min_size=1, max_size=self._size, **self._connect_options(route)
        )
        if not self._set_up_done:
            try:
                async with pool.acquire() as connection:
                    await self._set_up(cast(asyncpg.Connection, connection))
            except BaseException:
                pool.terminate()
                raise
            self._set_up_done = True
        return pool

    async def _try_pooler_again(self) -> None:
        now = time.monotonic()
        if now - self._pooler_tried_at < self._backend.failback_interval_s:
            return
        self._pooler_tried_at = now
        try:
            probe = await asyncpg.connect(**self._connect_options(Route.POOLER))
        except Exception as err:
            if not is_connection_failure(err):
                raise
            return
        probe.terminate()
        _LOGGER.info("worker database: direct -> pooler (%s)", redact_dsn(self._dsns[Route.POOLER]))
        await self._close_pool()
        self.route = Route.POOLER
        self._failures = 0

    async def _failed(self, error: BaseException) -> None:
        self.ok = False
        self._failures += 1
        reason = describe_failure(error)
        if reason != self._last_error:
            _LOGGER.warning(
                "worker database %s (%s): %s",
                self.route,
                redact_dsn(self._dsns[self.route]),
                reason,
            )
        self._last_error = reason
        if self._failures >= self._backend.failover_after and len(self._dsns) > 1:
            other = Route.DIRECT if self.route == Route.POOLER else Route.POOLER
            _LOGGER.error(
                "worker database %s failed %d times in a row; using %s (%s)",
                self.route,
                self._failures,
                other,
                redact_dsn(self._dsns[other]),
            )
            async with self._pool_lock:
                await self._close_pool()
                self.route = other
                self._failures = 0
                self._pooler_tried_at = time.monotonic()

    def _succeeded(self) -> None:
        if not self.ok and self._last_error is not None:
            _LOGGER.info("worker database %s: answering again", self.route)
        self.ok = True
        self._failures = 0
        self._last_error = None

    async def _close_pool(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.terminate()

    async def close(self) -> None:
        for keep in list(self._kept):
            await self._release_kept(keep)
        pool, self._pool = self._pool, None
        if pool is not None:
            try:
                await asyncio.wait_for(pool.close(), 5)
            except Exception:
                pool.terminate()
