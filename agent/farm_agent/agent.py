"""The running agent: wires ingest -> spool -> forward, the probes and publishing, and HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable

import asyncpg

from farm_agent.config import AgentConfig
from farm_agent.health.judging import RelayState
from farm_agent.health.probes import Prober
from farm_agent.health.publishing import HealthPublisher, last_will
from farm_agent.http import HttpEndpoint
from farm_agent.mqtt.link import MqttLink
from farm_agent.relay.forward import Forwarder
from farm_agent.relay.ingest import Ingest
from farm_agent.relay.marks import highest_mark, set_up_schema
from farm_agent.relay.metrics import ProbeMetrics, RelayMetrics
from farm_agent.relay.route import NONE, BackendRouter
from farm_agent.relay.spool import DEFAULT_REMEMBER, AsyncSpool

_LOGGER = logging.getLogger(__name__)

# SIGTERM to exit stays under 10 s: the intake flush, then (together) the MQTT
# disconnect and the batch in flight, which is abandoned if it takes longer. A probe
# round in progress is cancelled at once (its connections close within 1 s).
INTAKE_FLUSH_S = 3.0
BATCH_FINISH_S = 5.0


class StageFailedError(RuntimeError):
    """A stage of the relay crashed: the agent stopped, and must exit with a failure."""


class Agent:
    """One agent: start it with `run(stop)`; it returns after a graceful drain."""

    def __init__(self, config: AgentConfig) -> None:
        self.config = config
        self.metrics = RelayMetrics()
        self.probe_metrics = ProbeMetrics(self.metrics.registry)
        self.spool: AsyncSpool | None = None
        self.link: MqttLink | None = None
        self.router: BackendRouter | None = None
        self.ingest: Ingest | None = None
        self.http: HttpEndpoint | None = None
        self.publisher: HealthPublisher | None = None
        self.ready = asyncio.Event()
        self._restore_checked = False

    async def _set_up_database(self, connection: asyncpg.Connection) -> None:
        backend = self.config.backend
        await set_up_schema(connection, (backend.queue, backend.dead_letter_queue))
        if not self._restore_checked and self.spool is not None:
            await self._check_restored(connection, self.spool)
            self._restore_checked = True

    async def _check_restored(self, connection: asyncpg.Connection, spool: AsyncSpool) -> None:
        """Say once when the queue has seen higher sequence numbers than the spool file holds.

        Sequence numbers only grow in one file, so that file was restored from an older
        copy (a backup, a VM snapshot) or replaced. Nothing is lost or sent twice: the
        readings it still holds that were relayed are at or below their key space's mark
        and are skipped, and new readings get a key space of their own.
        """
        found = await highest_mark(connection, self.config.agent_id)
        highest = spool.spool.highest_seq_at_open
        if found is not None and found[1] > highest:
            space, mark = found
            _LOGGER.warning(
                "spool %s was restored from an older copy (or replaced): the queue already "
                "holds this agent's readings up to %d (key space %s), the file only up to %d. "
                "Readings in it that were already relayed are skipped; new readings get a "
                "new key space: nothing is lost or sent twice",
                spool.spool.path,
                mark,
                space,
                highest,
            )

    def readiness(self) -> dict[str, bool]:
        return {
            "mqtt_connected": self.link is not None and self.link.connected,
            "spool_writable": self.spool is not None and self.spool.room > 0,
            "spool_disk": self.spool is not None and not self.spool.disk_full,
            "database_route": self.router is not None and self.router.active != NONE,
        }

    def relay_state(self) -> RelayState:
        """The relay's route, fallbacks and counters, for the health report."""
        router = self.router
        return RelayState(
            route=router.active if router is not None else NONE,
            fallbacks_total=router.fallbacks_total if router is not None else 0,
            figures=self.metrics.figures(),
        )

    async def run(self, stop: asyncio.Event) -> None:
        config = self.config
        loop = asyncio.get_running_loop()
        self.spool = spool = await AsyncSpool.open(
            config.spool.path,
            config.agent_id,
            config.spool.max_messages,
            remember=max(DEFAULT_REMEMBER, 2 * config.mqtt.receive_maximum),
        )
        self.metrics.spool_depth.set(spool.depth)
        if spool.depth:
            _LOGGER.info("spool holds %d readings from before; relaying them first", spool.depth)
        self.link = link = MqttLink(config.mqtt, loop, will=last_will(config))
        prober = Prober(config, link, self.probe_metrics)
        self.publisher = publisher = HealthPublisher(
            config, link, prober, self.relay_state, self.probe_metrics
        )
        self.router = router = BackendRouter(config.backend, self.metrics, self._set_up_database)
        prober.report_route_verdicts_to(router.probed)
        self.ingest = ingest = Ingest(link, spool, self.metrics)
        forwarder = Forwarder(config, spool, router, self.metrics)
        if config.http is not None:
            self.http = HttpEndpoint(self.metrics, self.readiness, publisher.health_text)
            await self.http.start(config.http.host, config.http.port)
            _LOGGER.info("http endpoint on http://%s:%s/", config.http.host, self.http.port)
        link.start()
        ingest_task = loop.create_task(ingest.run(), name="farm-agent-ingest")
        forward_task = loop.create_task(forwarder.run(), name="farm-agent-forward")
        health_task = loop.create_task(publisher.run(), name="farm-agent-health")
        self.ready.set()
        _LOGGER.info(
            "farm-agent %s relaying %s from %s:%s to queue %s",
            config.agent_id,
            ", ".join(config.mqtt.topics),
            config.mqtt.host,
            config.mqtt.port,
            config.backend.queue,
        )
        stopped = loop.create_task(stop.wait())
        await asyncio.wait(
            {stopped, ingest_task, forward_task}, return_when=asyncio.FIRST_COMPLETED
        )
        failed = [
            task
            for task in (ingest_task, forward_task)
            if task.done() and not task.cancelled() and task.exception() is not None
        ]
        for task in failed:
            _LOGGER.error("stage %s failed", task.get_name(), exc_info=task.exception())
        await _cancel(health_task)
        await self._shut_down(ingest_task, forward_task, forwarder)
        stopped.cancel()
        if failed:
            # A non-zero exit, so that systemd (Restart=on-failure or always) starts it again.
            names = ", ".join(task.get_name() for task in failed)
            raise StageFailedError(f"stopped because stage {names} failed")

    async def _shut_down(
        self,
        ingest_task: asyncio.Task[None],
        forward_task: asyncio.Task[None],
        forwarder: Forwarder,
    ) -> None:
        _LOGGER.info("stopping: no more acks, flushing what was received")
        assert self.ingest is not None
        assert self.link is not None
        assert self.spool is not None
        assert self.publisher is not None
        await self.ingest.close_intake()
        await _finish(ingest_task, INTAKE_FLUSH_S)
        link = self.link
        await forwarder.stop()
        await asyncio.gather(
            link.stop(before_disconnect=self.publisher.offline),
            _finish(forward_task, BATCH_FINISH_S),
            self.publisher.close(),
        )
        if self.router is not None:
            await self.router.close()
        if self.http is not None:
            await self.http.stop()
        await self.spool.close()
        _LOGGER.info("stopped; %d readings stay in the spool for the next start", self.spool.depth)


async def _finish(task: Awaitable[None], grace_s: float) -> None:
    """Let a stage finish; past the timeout, abandon it (the spool and ledger make that safe)."""
    future = asyncio.ensure_future(task)
    try:
        await asyncio.wait_for(asyncio.shield(future), grace_s)
    except TimeoutError:
        future.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await future
    except Exception:
        _LOGGER.exception("stage failed while stopping")


async def _cancel(task: asyncio.Task[None]) -> None:
    """Stop a stage that holds nothing worth finishing (a probe round), and wait for it."""
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
    except Exception:
        _LOGGER.exception("stage %s failed", task.get_name())
