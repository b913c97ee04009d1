"""The running agent (`farm-agent run`): the relay, the health publisher and HTTP, wired together.

One MQTT link carries both jobs. The relay (`farm_agent.relay`) moves readings; the
health publisher (`farm_agent.health`) probes, judges and publishes, reading the
relay through its snapshot and told when its route or spool state changes; the
probes' verdicts on the routes go back to the relay's router.
"""

from __future__ import annotations

import asyncio
import logging

from farm_agent.build import add_build_info
from farm_agent.config import AgentConfig
from farm_agent.health.metrics import ProbeMetrics
from farm_agent.health.probes import Prober
from farm_agent.health.publishing import HealthPublisher, last_will
from farm_agent.health.slo_metrics import SloMetrics
from farm_agent.health.slo_tracker import SloTracker
from farm_agent.http import HttpEndpoint, agent_endpoint
from farm_agent.metrics import Metrics
from farm_agent.mqtt import MqttLink
from farm_agent.relay import Relay, RelayMetrics, open_spool

_LOGGER = logging.getLogger(__name__)


class StageFailedError(RuntimeError):
    """A stage of the relay crashed: the agent stopped, and must exit with a failure."""


class Agent:
    """One agent: start it with `run(stop)`; it returns after a graceful drain.

    SIGTERM to exit stays under 10 s: the relay's intake flush, then (together) the
    MQTT disconnect and the batch in flight. A probe round in progress is cancelled at
    once: its connections close within 1 s, each cancel request of a query in flight
    answered first (farm_agent.database.close_quietly).
    """

    def __init__(self, config: AgentConfig) -> None:
        self.config = config
        self.metrics = Metrics()
        self.relay_metrics = RelayMetrics(self.metrics)
        self.probe_metrics = ProbeMetrics(self.metrics)
        self.slo_metrics = SloMetrics(self.metrics)
        add_build_info(self.metrics)
        self.link: MqttLink | None = None
        self.relay: Relay | None = None
        self.http: HttpEndpoint | None = None

    def readiness(self) -> dict[str, bool]:
        """/readyz: connected and subscribed, and the relay able to take and send readings."""
        relay = self.relay
        return {
            "mqtt_connected": self.link is not None and self.link.connected,
            "mqtt_subscribed": self.link is not None and self.link.readings_subscribed,
            **(
                relay.readiness()
                if relay is not None
                else {"spool_writable": False, "spool_disk": False, "database_route": False}
            ),
        }

    async def run(self, stop: asyncio.Event) -> None:
        config = self.config
        loop = asyncio.get_running_loop()
        spool = await open_spool(config)
        self.link = link = MqttLink(config.mqtt, loop, will=last_will(config))
        prober = Prober(config, link, self.probe_metrics)
        self.relay = relay = Relay(config, link, spool, self.relay_metrics)
        slo = SloTracker(config, self.slo_metrics)
        publisher = HealthPublisher(config, link, prober, relay, self.probe_metrics, slo=slo)
        prober.report_route_verdicts_to(relay.probed)
        if config.http is not None:
            self.http = agent_endpoint(self.metrics, self.readiness, publisher.health_text)
            await self.http.start(config.http.host, config.http.port)
            _LOGGER.info("http endpoint on http://%s:%s/", config.http.host, self.http.port)
        link.start()
        stages = relay.start()
        health_task = loop.create_task(publisher.run(), name="farm-agent-health")
        _LOGGER.info(
            "farm-agent %s relaying %s from %s:%s to queue %s",
            config.agent_id,
            ", ".join(config.mqtt.topics),
            config.mqtt.host,
            config.mqtt.port,
            config.backend.queue,
        )
        stopped = loop.create_task(stop.wait())
        await asyncio.wait({stopped, *stages}, return_when=asyncio.FIRST_COMPLETED)
        failed = [
            task
            for task in stages
            if task.done() and not task.cancelled() and task.exception() is not None
        ]
        for task in failed:
            _LOGGER.error("stage %s failed", task.get_name(), exc_info=task.exception())
        await _cancel(health_task)
        _LOGGER.info("stopping: no more acks, flushing what was received")
        await relay.stop_intake()
        await asyncio.gather(
            link.stop(before_disconnect=publisher.offline),
            relay.stop_forwarding(),
            publisher.close(),
        )
        if self.http is not None:
            await self.http.stop()
        await relay.close()
        stopped.cancel()
        if failed:
            # A non-zero exit, so that systemd (Restart=on-failure or always) starts it again.
            names = ", ".join(task.get_name() for task in failed)
            raise StageFailedError(f"stopped because stage {names} failed")


async def _cancel(task: asyncio.Task[None]) -> None:
    """Stop a stage that holds nothing worth finishing (a probe round), and wait for it."""
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
    except Exception:
        _LOGGER.exception("stage %s failed", task.get_name())
