"""Publish: the agent's status (with its last will), its health, and Home Assistant discovery.

`status` is retained `online` while connected; the broker publishes the retained
`offline` will if the agent dies, and the agent publishes it itself when it stops.
`health` is retained, sent after each probe round and whenever the status or the
route changes in between: the relay says when its route or its spool's state
changes, so between rounds an idle agent does not wake at all. Discovery configs go
out at every connect and again when Home Assistant announces itself
(`<discovery_prefix>/status` = `online`), at most once per ANNOUNCE_EVERY_S: anyone
may publish that announcement, a thousand times.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

from farm_agent.config import AgentConfig
from farm_agent.database import Route
from farm_agent.health.discovery import discovery_messages
from farm_agent.health.judging import Health, assess
from farm_agent.health.metrics import ProbeMetrics
from farm_agent.health.probes import Prober, ProbeRound
from farm_agent.health.slo import SloReport
from farm_agent.health.slo_tracker import SloTracker
from farm_agent.masking import secrets_of
from farm_agent.mqtt import Message, MqttLink, Published
from farm_agent.relay import RelaySnapshot
from farm_agent.topics import (
    STATUS_OFFLINE,
    STATUS_ONLINE,
    birth_topic,
    health_topic,
    status_topic,
)

_LOGGER = logging.getLogger(__name__)

# Home Assistant's announcements within this many seconds of a round get one more round.
ANNOUNCE_EVERY_S = 5.0


def last_will(config: AgentConfig) -> tuple[str, bytes]:
    """The will the broker publishes (retained) if the agent vanishes: `offline`."""
    return status_topic(config.mqtt.topic_prefix, config.agent_id), STATUS_OFFLINE.encode()


class RelayView(Protocol):
    """What the publisher reads of the relay: its figures, and word when they change."""

    def snapshot(self) -> RelaySnapshot: ...

    def add_listener(self, listener: Callable[[], None]) -> None: ...


class HealthPublisher:
    """Runs the probe rounds and keeps the broker's retained status and health up to date."""

    def __init__(
        self,
        config: AgentConfig,
        link: MqttLink,
        prober: Prober,
        relay: RelayView,
        metrics: ProbeMetrics | None = None,
        *,
        slo: SloTracker | None = None,
    ) -> None:
        self._config = config
        self._link = link
        self._prober = prober
        self._relay = relay
        self._metrics = metrics
        self._secrets = secrets_of(config)
        prefix = config.mqtt.topic_prefix
        self._status_topic = status_topic(prefix, config.agent_id)
        self._health_topic = health_topic(prefix, config.agent_id)
        self._last_round: ProbeRound | None = None
        # The objectives, judged (and the round kept in their history) after each round.
        self._slo = slo
        self._slo_report: SloReport | None = None
        self.latest: Health | None = None
        self._loop = asyncio.get_running_loop()
        # When Home Assistant's announcement was last answered, and the answer waiting.
        self._last_answered: float | None = None
        self._announce_due: asyncio.TimerHandle | None = None
        # The last round of discovery configs; a new round waits until they are out.
        self._discovery_out: list[Published] = []
        # Set when the relay's route or spool state changed since the last look.
        self._relay_changed = asyncio.Event()
        relay.add_listener(self._relay_changed.set)
        link.add_connect_listener(self._on_connect)
        discovery = config.mqtt.discovery_prefix
        if discovery is not None:
            # QoS 0: with manual acks, a QoS 1 birth message would wait for an ack.
            link.subscribe(birth_topic(discovery), self._on_birth, qos=0)

    async def run(self) -> None:
        """Probe each `probes.interval_s`; in between, publish when the status or route changes."""
        loop = asyncio.get_running_loop()
        interval_s = self._config.probes.interval_s
        await self._await_first_route()
        while True:
            next_round = loop.time() + interval_s
            try:
                route = self._relay.snapshot().route
                self._last_round = await self._prober.run_round(route)
                if self._slo is not None:
                    self._slo_report = await self._slo.observe(
                        self._last_round, self._relay.snapshot(), time.time(), route
                    )
                self._publish(self._assess())
                await self._publish_changes_until(next_round)
            except Exception:  # a bug here must not stop the reports for good
                _LOGGER.exception("health round failed; next one in %g s", interval_s)
                await asyncio.sleep(max(0.0, next_round - loop.time()))

    async def _publish_changes_until(self, next_round: float) -> None:
        """Between rounds: publish at once when the status or the relay's route changes."""
        loop = asyncio.get_running_loop()
        while await self._relay_change(next_round - loop.time()):
            health = self._assess()
            if self.latest is None or _moved(self.latest, health):
                self._publish(health)

    async def _await_first_route(self) -> None:
        """Give the relay its first connection before the first report, not a passing `none`."""
        deadline = asyncio.get_running_loop().time() + self._config.backend.connect_timeout_s
        while self._relay.snapshot().route == Route.NONE:
            if not await self._relay_change(deadline - asyncio.get_running_loop().time()):
                return

    async def _relay_change(self, timeout_s: float) -> bool:
        """Whether the relay said it changed within `timeout_s` (False: time is up)."""
        if timeout_s <= 0:
            return False
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._relay_changed.wait(), timeout_s)
        changed = self._relay_changed.is_set()
        self._relay_changed.clear()
        return changed

    def offline(self) -> None:
        """Say `offline` before a clean disconnect (the will covers an unclean one)."""
        self._link.publish(self._status_topic, STATUS_OFFLINE, qos=1, retain=True)

    def health_text(self) -> str | None:
        """The latest health JSON, for the HTTP endpoint."""
        return None if self.latest is None else self.latest.to_text(self._secrets)

    async def close(self) -> None:
        if self._announce_due is not None:
            self._announce_due.cancel()
        await self._prober.close()
        if self._slo is not None:
            await self._slo.close()

    def _assess(self) -> Health:
        assert self._last_round is not None
        return assess(
            self._config,
            self._last_round,
            self._relay.snapshot(),
            time.time(),
            slo=self._slo_report,
        )

    def _publish(self, health: Health) -> None:
        if self.latest is not None and self.latest.status != health.status:
            _LOGGER.info(
                "health %s -> %s%s",
                self.latest.status,
                health.status,
                f": {'; '.join(health.problems)}" if health.problems else "",
            )
        self.latest = health
        if self._metrics is not None:
            self._metrics.record_status(health.status)
        if self._link.connected:
            text = health.to_text(self._secrets)
            self._link.publish(self._health_topic, text, qos=1, retain=True)

    # event loop: MQTT connection events --------------------------------------------

    def _on_connect(self, session_present: bool) -> None:
        self._announce()

    def _announce(self) -> None:
        """Online (again), or Home Assistant is: status, discovery, and the latest health."""
        self._link.publish(self._status_topic, STATUS_ONLINE, qos=1, retain=True)
        self._send_discovery()
        if self.latest is not None:
            self._publish(self.latest)

    def _send_discovery(self) -> None:
        """One round of discovery configs, unless the last one is still on its way.

        The configs never change while the agent runs, so the round still queued says
        all this one would: the outgoing queue holds at most one round, however often
        Home Assistant (or anyone) asks.
        """
        if not all(info.is_published() for info in self._discovery_out):
            return
        self._discovery_out = [
            self._link.publish(topic, json.dumps(config), qos=1, retain=True)
            for topic, config in discovery_messages(self._config)
        ]

    def _on_birth(self, client: Any, userdata: Any, message: Message) -> None:
        # paho's thread: Home Assistant (re)started and forgot the agent; tell it again.
        if bytes(message.payload) == STATUS_ONLINE.encode():
            self._loop.call_soon_threadsafe(self._home_assistant_online)

    def _home_assistant_online(self) -> None:
        """Answer now, or once when ANNOUNCE_EVERY_S have passed since the last answer."""
        if self._announce_due is not None:
            return  # an answer is already coming, and it answers this announcement too
        since = None if self._last_answered is None else self._loop.time() - self._last_answered
        if since is None or since >= ANNOUNCE_EVERY_S:
            self._answer_home_assistant()
        else:
            self._announce_due = self._loop.call_later(
                ANNOUNCE_EVERY_S - since, self._answer_home_assistant
            )

    def _answer_home_assistant(self) -> None:
        self._announce_due = None
        self._last_answered = self._loop.time()
        self._announce()


def _moved(published: Health, now: Health) -> bool:
    """A change worth publishing before the next round: status or route."""
    return published.status != now.status or published.backend.route != now.backend.route
