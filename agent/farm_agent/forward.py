"""Forward: spooled readings out to the queue in batches, then off the spool.

A batch leaves when it holds `batch_size` readings or its oldest reading has waited
`batch_interval_ms`. It is deleted from the spool only after the database committed
it; the ledger makes a resend after a crash harmless. A reading the database refuses
is found by splitting the batch and goes to the dead-letter queue with the reason,
so one bad payload never stalls the pipeline.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass

import asyncpg

from farm_agent.config import AgentConfig
from farm_agent.envelope import Envelope, SpooledReading, build_envelope, dead_letter
from farm_agent.faults import failpoint
from farm_agent.metrics import RelayMetrics
from farm_agent.route import (
    BackendRouter,
    NoRouteError,
    describe_failure,
    is_connection_failure,
)
from farm_agent.spool import AsyncSpool
from farm_agent.sql import prune_ledger, send_batch

_LOGGER = logging.getLogger(__name__)

BACKOFF_MIN_S = 0.5
BACKOFF_MAX_S = 30.0
PRUNE_EVERY_S = 3600.0
PRUNE_CHUNK = 10_000


@dataclass(frozen=True, slots=True)
class BatchResult:
    relayed: int
    dead_lettered: int
    duplicates: int


class Forwarder:
    """Drains the spool into PGMQ over the router's active route."""

    def __init__(
        self,
        config: AgentConfig,
        spool: AsyncSpool,
        router: BackendRouter,
        metrics: RelayMetrics,
    ) -> None:
        self._config = config
        self._backend = config.backend
        self._spool = spool
        self._router = router
        self._metrics = metrics
        self._stopping = asyncio.Event()
        self._failures = 0
        self._next_prune = 0.0
        self._last_problem: str | None = None

    async def run(self) -> None:
        """Forward until `stop()`; a batch in flight is finished or abandoned, never half-done."""
        await self._connect_early()
        while not self._stopping.is_set():
            readings = await self._next_batch()
            if not readings:
                continue
            try:
                name, connection = await self._router.connection()
            except NoRouteError:
                await self._back_off()
                continue
            except Exception as err:  # set-up refused: e.g. PGMQ missing, no permission
                self._report(describe_failure(err))
                await self._back_off()
                continue
            try:
                result = await self._forward(connection, readings)
            except Exception as err:
                if is_connection_failure(err):
                    self._router.failed(name, err)
                else:
                    # E.g. a queue dropped under us: reconnecting runs the set-up again.
                    self._router.discard(name)
                    self._report(f"batch failed: {describe_failure(err)}")
                self._metrics.batches_failed.inc()
                await self._back_off()
                continue
            self._router.succeeded(name)
            failpoint("after_queue_commit")
            await self._spool.delete([reading.seq for reading in readings])
            self._record(readings, result)
            await self._maybe_prune(connection)

    async def _connect_early(self) -> None:
        """Set up the queues at start, so they exist (and a bad DSN shows) before any reading."""
        try:
            await self._router.connection()
        except NoRouteError:
            pass
        except Exception as err:  # set-up refused: e.g. PGMQ missing, no permission
            self._report(describe_failure(err))

    async def stop(self) -> None:
        self._stopping.set()
        self._spool.changed.set()

    async def _next_batch(self) -> list[SpooledReading]:
        """Wait until a batch is due: full, or its oldest reading has waited long enough."""
        size = self._backend.batch_size
        linger = self._backend.batch_interval_ms / 1000
        while not self._stopping.is_set():
            if self._spool.depth >= size:
                return await self._spool.peek(size)
            if self._spool.depth > 0:
                oldest = await self._spool.oldest_received_at()
                wait = (oldest or 0.0) + linger - time.time()
                if wait <= 0:
                    return await self._spool.peek(size)
            else:
                wait = None
            self._spool.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._spool.changed.wait(), wait)
        return []

    async def _forward(
        self, connection: asyncpg.Connection, readings: list[SpooledReading]
    ) -> BatchResult:
        agent_id = self._config.agent_id
        limit = self._config.mqtt.max_payload_bytes
        envelopes = [build_envelope(reading, agent_id, limit) for reading in readings]
        try:
            return await self._send(connection, envelopes)
        except asyncpg.DataError:
            # Something in the batch is refused by PostgreSQL: find it by halves.
            return await self._send_by_halves(connection, readings, envelopes)

    async def _send(self, connection: asyncpg.Connection, envelopes: list[Envelope]) -> BatchResult:
        readings = [envelope for envelope in envelopes if not envelope.dead_letter]
        dead = [envelope for envelope in envelopes if envelope.dead_letter]
        if not dead:
            relayed = await self._send_to(connection, self._backend.queue, readings)
            return BatchResult(relayed, 0, len(readings) - relayed)
        async with connection.transaction():
            relayed = await self._send_to(connection, self._backend.queue, readings)
            dead_lettered = await self._send_to(connection, self._backend.dead_letter_queue, dead)
        return BatchResult(relayed, dead_lettered, len(envelopes) - relayed - dead_lettered)

    async def _send_to(
        self, connection: asyncpg.Connection, queue: str, envelopes: list[Envelope]
    ) -> int:
        if not envelopes:
            return 0
        keys = [envelope.key for envelope in envelopes]
        bodies = [envelope.body for envelope in envelopes]
        return await send_batch(connection, queue, keys, bodies)

    async def _send_by_halves(
        self,
        connection: asyncpg.Connection,
        readings: list[SpooledReading],
        envelopes: list[Envelope],
    ) -> BatchResult:
        if len(envelopes) == 1:
            try:
                return await self._send(connection, envelopes)
            except asyncpg.DataError as err:
                reason = f"refused by PostgreSQL: {describe_failure(err)}"
                limit = self._config.mqtt.max_payload_bytes
                refused = dead_letter(readings[0], self._config.agent_id, reason, limit)
                _LOGGER.warning("reading on %s dead-lettered: %s", readings[0].topic, reason)
                return await self._send(connection, [refused])
        middle = len(envelopes) // 2
        first = await self._send_by_halves(connection, readings[:middle], envelopes[:middle])
        second = await self._send_by_halves(connection, readings[middle:], envelopes[middle:])
        return BatchResult(
            first.relayed + second.relayed,
            first.dead_lettered + second.dead_lettered,
            first.duplicates + second.duplicates,
        )

    def _record(self, readings: list[SpooledReading], result: BatchResult) -> None:
        self._failures = 0
        if self._last_problem is not None:
            _LOGGER.info("relaying again (spool depth %d)", self._spool.depth)
            self._last_problem = None
        metrics = self._metrics
        metrics.relayed.inc(result.relayed)
        metrics.dead_lettered.inc(result.dead_lettered)
        metrics.duplicates_suppressed.inc(result.duplicates)
        metrics.spool_depth.set(self._spool.depth)
        now = time.time()
        observe = metrics.relay_latency.observe
        for reading in readings:
            observe(now - reading.received_at)

    async def _back_off(self) -> None:
        delay = min(BACKOFF_MAX_S, BACKOFF_MIN_S * 2**self._failures)
        self._failures += 1
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), delay)

    def _report(self, problem: str) -> None:
        if problem != self._last_problem:
            _LOGGER.error("%s; the readings stay in the spool and will be retried", problem)
            self._last_problem = problem

    async def _maybe_prune(self, connection: asyncpg.Connection) -> None:
        now = time.monotonic()
        if now < self._next_prune:
            return
        self._next_prune = now + PRUNE_EVERY_S
        retention_s = self._backend.ledger_retention_days * 86400
        try:
            pruned = await prune_ledger(connection, retention_s, PRUNE_CHUNK)
        except (asyncpg.PostgresError, OSError, TimeoutError) as err:
            _LOGGER.warning("ledger pruning failed, will retry: %s", describe_failure(err))
            return
        if pruned == PRUNE_CHUNK:
            self._next_prune = now  # more to go: continue after the next batch
        if pruned:
            _LOGGER.debug("pruned %d ledger keys older than %g days", pruned, retention_s / 86400)
