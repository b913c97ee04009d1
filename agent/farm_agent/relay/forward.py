"""Forward: spooled readings out to the queue in batches, then off the spool.

A batch leaves when it holds `batch_size` readings (or `batch_max_bytes`) or its
oldest reading has waited `batch_interval_ms`, measured on the monotonic clock. It
is deleted from the spool only after the database committed it; the key space's
high-water mark, advanced in the same statement, makes a resend after a crash
harmless. A batch that times out is retried smaller (halved, down to one reading),
and batches grow back while commits are quick: a slow uplink still gets everything
through. A reading the database refuses is found by splitting the batch and goes to
the dead-letter queue with the reason, so one bad payload never stalls the pipeline.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from dataclasses import dataclass

import asyncpg

from farm_agent.config import AgentConfig
from farm_agent.failures import (
    DATABASE_ERRORS,
    describe_failure,
    is_connection_failure,
    is_timeout,
)
from farm_agent.faults import failpoint
from farm_agent.relay.envelope import (
    Envelope,
    SpooledBatch,
    SpooledReading,
    build_envelope,
    dead_letter,
)
from farm_agent.relay.marks import prune_marks, send_batch
from farm_agent.relay.metrics import RelayMetrics
from farm_agent.relay.route import BackendRouter, NoRouteError
from farm_agent.relay.spool import AsyncSpool, SpoolDiskFullError

_LOGGER = logging.getLogger(__name__)

BACKOFF_MIN_S = 0.5
BACKOFF_MAX_S = 30.0
PRUNE_EVERY_S = 3600.0
# A batch that commits within this share of backend.statement_timeout_s may double.
QUICK_SHARE = 0.25


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
        # Readings per batch now: batch_size, or fewer after timeouts on a slow uplink.
        self.batch_limit = config.backend.batch_size

    async def run(self) -> None:
        """Forward until `stop()`; a batch in flight is finished or abandoned, never half-done."""
        await self._connect_early()
        loop = asyncio.get_running_loop()
        while not self._stopping.is_set():
            batch = await self._next_batch()
            if batch is None or not batch.readings:
                continue
            readings = batch.readings
            try:
                name, connection = await self._router.connection()
            except NoRouteError:
                await self._back_off()
                continue
            except Exception as err:  # set-up refused: e.g. PGMQ missing, no permission
                self._report(describe_failure(err))
                await self._back_off()
                continue
            started = loop.time()
            try:
                result = await self._forward(connection, batch)
            except Exception as err:
                if is_timeout(err):
                    self._shrink(len(readings))
                if is_connection_failure(err):
                    self._router.failed(name, err)
                else:
                    # E.g. a queue dropped under us: reconnecting runs the set-up again.
                    self._router.discard(name)
                    self._report(f"batch failed: {describe_failure(err)}")
                self._metrics.batches_failed.inc()
                await self._back_off()
                continue
            self._grow(len(readings), loop.time() - started)
            self._router.succeeded(name)
            failpoint("after_queue_commit")
            try:
                arrivals = await self._spool.delete([reading.seq for reading in readings])
            except SpoolDiskFullError:
                # Committed, still spooled: resent later, and skipped below the mark then.
                self._report("spool disk full: cannot delete relayed readings yet")
                await self._back_off()
                continue
            self._record(readings, arrivals, result)
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
        self._spool.wake_readers()

    async def _next_batch(self) -> SpooledBatch | None:
        """Wait until a batch is due: full, or its oldest reading has waited long enough."""
        linger = self._backend.batch_interval_ms / 1000
        max_bytes = self._backend.batch_max_bytes
        while not self._stopping.is_set():
            if self._spool.depth >= self.batch_limit:
                return await self._spool.peek(self.batch_limit, max_bytes)
            if self._spool.depth > 0:
                oldest = self._spool.oldest_arrival
                # Monotonic: a wall clock stepped back (NTP at boot) must not hold readings.
                waited = math.inf if oldest is None else time.monotonic() - oldest
                wait = linger - waited
                if wait <= 0:
                    return await self._spool.peek(self.batch_limit, max_bytes)
                # Until the linger ends, only a full batch is worth waking for.
                await self._spool.readings_added(wait, at_least=self.batch_limit)
            else:
                await self._spool.readings_added(None)
        return None

    def _shrink(self, sent: int) -> None:
        """A batch of `sent` readings timed out: send half as many next time."""
        smaller = max(1, sent // 2)
        if smaller < self.batch_limit:
            self.batch_limit = smaller
            _LOGGER.warning(
                "a batch of %d readings took longer than backend.statement_timeout_s (%g s): "
                "sending at most %d per batch until commits are quick again",
                sent,
                self._backend.statement_timeout_s,
                smaller,
            )

    def _grow(self, sent: int, took_s: float) -> None:
        """A full batch committed quickly: allow twice as many, up to batch_size."""
        size = self._backend.batch_size
        quick = took_s < self._backend.statement_timeout_s * QUICK_SHARE
        if self.batch_limit < size and sent >= self.batch_limit and quick:
            self.batch_limit = min(size, self.batch_limit * 2)
            if self.batch_limit == size:
                _LOGGER.info("commits are quick again: batches of up to %d readings", size)

    async def _forward(self, connection: asyncpg.Connection, batch: SpooledBatch) -> BatchResult:
        agent_id = self._config.agent_id
        limit = self._config.mqtt.max_payload_bytes
        readings = batch.readings
        envelopes = [build_envelope(reading, agent_id, limit) for reading in readings]
        try:
            return await self._send(connection, batch.key_space, envelopes)
        except asyncpg.DataError:
            # Something in the batch is refused by PostgreSQL: find it by halves.
            return await self._send_by_halves(connection, batch.key_space, readings, envelopes)

    async def _send(
        self, connection: asyncpg.Connection, key_space: str, envelopes: list[Envelope]
    ) -> BatchResult:
        relayed, dead_lettered = await send_batch(
            connection,
            queues=(self._backend.queue, self._backend.dead_letter_queue),
            agent_id=self._config.agent_id,
            key_space=key_space,
            seqs=[envelope.seq for envelope in envelopes],
            bodies=[envelope.body for envelope in envelopes],
            dead=[envelope.dead_letter for envelope in envelopes],
        )
        return BatchResult(relayed, dead_lettered, len(envelopes) - relayed - dead_lettered)

    async def _send_by_halves(
        self,
        connection: asyncpg.Connection,
        key_space: str,
        readings: list[SpooledReading],
        envelopes: list[Envelope],
    ) -> BatchResult:
        if len(envelopes) == 1:
            try:
                return await self._send(connection, key_space, envelopes)
            except asyncpg.DataError as err:
                reason = f"refused by PostgreSQL: {describe_failure(err)}"
                limit = self._config.mqtt.max_payload_bytes
                refused = dead_letter(readings[0], self._config.agent_id, reason, limit)
                _LOGGER.warning("reading on %s dead-lettered: %s", readings[0].topic, reason)
                return await self._send(connection, key_space, [refused])
        middle = len(envelopes) // 2
        first = await self._send_by_halves(
            connection, key_space, readings[:middle], envelopes[:middle]
        )
        second = await self._send_by_halves(
            connection, key_space, readings[middle:], envelopes[middle:]
        )
        return BatchResult(
            first.relayed + second.relayed,
            first.dead_lettered + second.dead_lettered,
            first.duplicates + second.duplicates,
        )

    def _record(
        self,
        readings: list[SpooledReading],
        arrivals: list[tuple[int, float]],
        result: BatchResult,
    ) -> None:
        self._failures = 0
        if self._last_problem is not None:
            _LOGGER.info("relaying again (spool depth %d)", self._spool.depth)
            self._last_problem = None
        metrics = self._metrics
        metrics.forwarded(
            result.relayed, result.dead_lettered, result.duplicates, self._spool.depth
        )
        observe = metrics.relay_latency.observe
        now = time.monotonic()
        start = 0
        for count, arrived in arrivals:
            if arrived == -math.inf:
                # Spooled by an earlier run: only the wall clock spans the restart.
                wall_now = time.time()
                for reading in readings[start : start + count]:
                    observe(max(0.0, wall_now - reading.received_at))
            else:
                observe(now - arrived, count)
            start += count

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
        """Now and then, forget the marks of key spaces the spool is done with."""
        now = time.monotonic()
        if now < self._next_prune:
            return
        self._next_prune = now + PRUNE_EVERY_S
        retention_s = self._backend.ledger_retention_days * 86400
        try:
            pruned = await prune_marks(
                connection, self._config.agent_id, self._spool.spool.key_spaces, retention_s
            )
        except DATABASE_ERRORS as err:
            _LOGGER.warning("pruning old marks failed, will retry: %s", describe_failure(err))
            return
        if pruned:
            _LOGGER.debug(
                "pruned %d marks of key spaces finished %g days ago", pruned, retention_s / 86400
            )
