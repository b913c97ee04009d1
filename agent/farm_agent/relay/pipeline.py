"""The relay as one piece: ingest -> spool -> forward, over the router's route.

A reading's way: `ingest` takes it from the MQTT link and commits it to the `spool`
(then acks it); `forward` reads batches from the spool, wraps each reading in its
`envelope` and sends the batch with `marks` (the exactly-once statement) over the
`route` the router chose; then it leaves the spool. `metrics` counts on the way.

The rest of the agent sees the relay through `snapshot()` (its figures, typed) and
`add_listener()` (told when the route or the spool's state changes), and gives it
the health probes' verdicts on the routes (`probed`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path

import asyncpg

from farm_agent.config import AgentConfig
from farm_agent.database import Route
from farm_agent.mqtt import MqttLink
from farm_agent.relay.forward import Forwarder
from farm_agent.relay.ingest import Ingest, commit_window_s
from farm_agent.relay.marks import highest_mark, set_up_schema
from farm_agent.relay.metrics import RelayMetrics, RelaySnapshot
from farm_agent.relay.route import BackendRouter
from farm_agent.relay.spool import DEFAULT_REMEMBER, AsyncSpool, read_depth

_LOGGER = logging.getLogger(__name__)

# SIGTERM to exit stays under 10 s: the intake flush, then (together) the MQTT
# disconnect and the batch in flight, which is abandoned if it takes longer.
INTAKE_FLUSH_S = 3.0
BATCH_FINISH_S = 5.0


async def open_spool(config: AgentConfig) -> AsyncSpool:
    """The agent's spool file, opened (raises SpoolError if it cannot be used)."""
    spool = await AsyncSpool.open(
        config.spool.path,
        config.agent_id,
        config.spool.max_messages,
        remember=max(DEFAULT_REMEMBER, 2 * config.mqtt.receive_maximum),
    )
    if spool.depth:
        _LOGGER.info("spool holds %d readings from before; relaying them first", spool.depth)
    return spool


class Relay:
    """The running relay: `start()` its stages, then stop intake, forwarding, and `close()`."""

    def __init__(
        self, config: AgentConfig, link: MqttLink, spool: AsyncSpool, metrics: RelayMetrics
    ) -> None:
        self._config = config
        self.spool = spool
        self.metrics = metrics
        self._listeners: list[Callable[[], None]] = []
        self._restore_checked = False
        metrics.spool_depth.set(spool.depth)
        self.router = BackendRouter(
            config.backend, metrics, self._set_up_database, on_route_change=self._changed
        )
        self.ingest = Ingest(
            link,
            spool,
            metrics,
            on_blocked_change=self._changed,
            commit_window_s=commit_window_s(config.backend.batch_interval_ms),
        )
        self.forwarder = Forwarder(config, spool, self.router, metrics)
        self._ingest_task: asyncio.Task[None] | None = None
        self._forward_task: asyncio.Task[None] | None = None

    def start(self) -> tuple[asyncio.Task[None], ...]:
        """Start ingest and forward; returns their tasks (one ending early has failed)."""
        loop = asyncio.get_running_loop()
        self._ingest_task = loop.create_task(self.ingest.run(), name="farm-agent-ingest")
        self._forward_task = loop.create_task(self.forwarder.run(), name="farm-agent-forward")
        return self._ingest_task, self._forward_task

    # what the rest of the agent sees -------------------------------------------------

    def snapshot(self) -> RelaySnapshot:
        """The relay's route, fallbacks and counters now, for the health report."""
        metrics, ingest = self.metrics, self.ingest
        return RelaySnapshot(
            route=self.router.active,
            fallbacks_total=self.router.fallbacks_total,
            received_total=metrics.received_total,
            relayed_total=metrics.relayed_total,
            dead_lettered_total=metrics.dead_lettered_total,
            spool_depth=self.spool.depth,
            e2e_latency_p95_ms=metrics.relay_latency.p95_ms(),
            spool_full=ingest.backpressure and not ingest.disk_full,
            spool_disk_full=ingest.disk_full,
        )

    def add_listener(self, listener: Callable[[], None]) -> None:
        """`listener()` runs (on the event loop) when the route or the spool's state changes."""
        self._listeners.append(listener)

    def probed(self, verdicts: Mapping[Route, str | None]) -> None:
        """The health probes' verdicts per route: None when it answered, else why not."""
        self.router.probed(verdicts)

    def readiness(self) -> dict[str, bool]:
        """The relay's part of /readyz."""
        return {
            "spool_writable": self.spool.room > 0,
            "spool_disk": not self.spool.disk_full,
            "database_route": self.router.active != Route.NONE,
        }

    def _changed(self) -> None:
        for listener in self._listeners:
            listener()

    # the database's set-up, at every new connection ----------------------------------

    async def _set_up_database(self, connection: asyncpg.Connection) -> None:
        await set_up_schema(connection, self._config)
        if not self._restore_checked:
            await self._check_restored(connection)
            self._restore_checked = True

    async def _check_restored(self, connection: asyncpg.Connection) -> None:
        """Say once when the queue has seen higher sequence numbers than the spool file holds.

        Sequence numbers only grow in one file, so that file was restored from an older
        copy (a backup, a VM snapshot) or replaced. Nothing is lost or sent twice: the
        readings it still holds that were relayed are at or below their key space's mark
        and are skipped, and new readings get a key space of their own.
        """
        found = await highest_mark(connection, self._config.agent_id)
        highest = self.spool.spool.highest_seq_at_open
        if found is not None and found[1] > highest:
            space, mark = found
            _LOGGER.warning(
                "spool %s was restored from an older copy (or replaced): the queue already "
                "holds this agent's readings up to %d (key space %s), the file only up to %d. "
                "Readings in it that were already relayed are skipped; new readings get a "
                "new key space: nothing is lost or sent twice",
                self.spool.spool.path,
                mark,
                space,
                highest,
            )

    # stopping ------------------------------------------------------------------------

    async def stop_intake(self) -> None:
        """No more acks: commit and ack what was received, within INTAKE_FLUSH_S."""
        await self.ingest.close_intake()
        if self._ingest_task is not None:
            await _finish(self._ingest_task, INTAKE_FLUSH_S)

    async def stop_forwarding(self) -> None:
        """Finish the batch in flight within BATCH_FINISH_S, or abandon it (the marks allow it)."""
        await self.forwarder.stop()
        if self._forward_task is not None:
            await _finish(self._forward_task, BATCH_FINISH_S)

    async def close(self) -> None:
        await self.router.close()
        await self.spool.close()
        _LOGGER.info("stopped; %d readings stay in the spool for the next start", self.spool.depth)


def idle_snapshot(route: Route, spool_path: Path) -> RelaySnapshot:
    """The relay of a process that relays nothing (`check`); what waits in the spool is real."""
    return RelaySnapshot(
        route=route,
        fallbacks_total=0,
        received_total=0,
        relayed_total=0,
        dead_lettered_total=0,
        spool_depth=_spool_depth(spool_path),
        e2e_latency_p95_ms=None,
        spool_full=False,
    )


def _spool_depth(path: Path) -> int:
    """Readings in the spool file, read-only (the agent may be running); 0 if there is none."""
    try:
        return read_depth(path)
    except sqlite3.Error as err:
        _LOGGER.warning("cannot read the spool %s (%s); its depth shows as 0", path, err)
        return 0


async def _finish(task: Awaitable[None], grace_s: float) -> None:
    """Let a stage finish; past the timeout, abandon it (the spool and the marks make that safe)."""
    future = asyncio.ensure_future(task)
    try:
        await asyncio.wait_for(asyncio.shield(future), grace_s)
    except TimeoutError:
        future.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await future
    except Exception:
        _LOGGER.exception("stage failed while stopping")
