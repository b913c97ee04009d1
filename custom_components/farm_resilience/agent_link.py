"""The agent link: follows one edge agent's status and health topics through HA's MQTT.

Availability rules (docs/home-assistant.md, "Edge agents" → "Status and health"):

- The status topic is the truth: `online` makes the agent available, `offline`
  (also its last will), an empty (cleared) status or no status at all does not.
- A message the broker replays from its retained store (on subscribe or after a
  reconnect) is old news; a live one is news now. A live health payload can only
  come from a running agent, so it makes the agent available even after an
  `offline` (a will delivered late, after the agent had already reconnected).
- A retained `online` replayed after this link saw the agent go offline counts
  only once a health payload newer than the last one before that `offline`
  arrives: a broker that lost the will in a crash replays an `online` of a dead
  agent, together with its old health.
- Health `ts` is compared only with earlier `ts` of the same agent, never with
  Home Assistant's clock (a farm computer's clock may be wrong): a replayed
  health older than the one shown is ignored, and no health, however recent its
  `ts`, makes the agent available when it was replayed.
- An online agent that sends no health for 3 probe intervals (learnt from the
  gaps between its live health payloads; at least 60 s) is silent: its figures
  are unavailable until the next one. A hung agent keeps its MQTT connection,
  so neither `offline` nor the will comes.
"""

from __future__ import annotations

import time
from collections import deque
from itertools import pairwise
from typing import TYPE_CHECKING, Any

from homeassistant.components import mqtt
from homeassistant.config_entries import ConfigEntry
from homeassistant.core import CALLBACK_TYPE, HassJob, HomeAssistant, callback
from homeassistant.helpers.dispatcher import async_dispatcher_send
from homeassistant.helpers.event import async_call_later

from .agent_health import AgentHealth, InvalidHealthError, parse_health, shown
from .const import (
    CONF_AGENT_ID,
    CONF_TOPIC_PREFIX,
    DEFAULT_TOPIC_PREFIX,
    LOGGER,
    SIGNAL_AGENT_UPDATE,
    STATUS_OFFLINE,
    STATUS_ONLINE,
)

if TYPE_CHECKING:
    from datetime import datetime

# An online agent without health for this many probe intervals (at least the minimum) is silent.
SILENT_AFTER_INTERVALS = 3
MIN_SILENT_AFTER_S = 60.0
# Live health arrivals remembered to learn the probe interval (their largest gap).
INTERVAL_SAMPLES = 5


def status_topic(prefix: str, agent_id: str) -> str:
    """Return the retained `online` / `offline` topic of an agent."""
    return f"{prefix}/agent/{agent_id}/status"


def health_topic(prefix: str, agent_id: str) -> str:
    """Return the retained health JSON topic of an agent."""
    return f"{prefix}/agent/{agent_id}/health"


class AgentLink:
    """Runtime data of an agent entry: the agent's availability, health and history."""

    def __init__(self, hass: HomeAssistant, entry: ConfigEntry[Any]) -> None:
        """Prepare; `async_start` subscribes."""
        self.hass = hass
        self.entry = entry
        self.agent_id: str = entry.data[CONF_AGENT_ID]
        self.topic_prefix: str = entry.data.get(CONF_TOPIC_PREFIX, DEFAULT_TOPIC_PREFIX)
        self.status_topic = status_topic(self.topic_prefix, self.agent_id)
        self.health_topic = health_topic(self.topic_prefix, self.agent_id)
        self.active = False
        self.mqtt_connected = False
        self.status: str | None = None
        self.online = False
        self.health: AgentHealth | None = None
        # When the agent stopped being available (time.monotonic()); None while it is.
        self.down_since: float | None = time.monotonic()
        # When the last status and health arrived (time.monotonic()).
        self.status_received_at: float | None = None
        self.health_received_at: float | None = None
        self.rejected = 0
        self.last_rejection: str | None = None
        self._rejecting = False
        # Set when an `offline` is applied: the health ts shown at that moment.
        self._offline_seen = False
        self._offline_health_ts: datetime | None = None
        self._online_unconfirmed = False
        self.silent = False
        self._live_health_at: deque[float] = deque(maxlen=INTERVAL_SAMPLES)
        self._silence_check: CALLBACK_TYPE | None = None
        self._listeners: list[CALLBACK_TYPE] = []
        self._unsubs: list[CALLBACK_TYPE] = []

    @property
    def available(self) -> bool:
        """Return whether the agent's figures are current: broker connected, agent online, heard."""
        return self.mqtt_connected and self.online and not self.silent

    @property
    def silent_after(self) -> float | None:
        """Return how long an online agent may go without health; None until learnt."""
        if len(self._live_health_at) < 2:
            return None
        interval = max(later - earlier for earlier, later in pairwise(self._live_health_at))
        return max(SILENT_AFTER_INTERVALS * interval, MIN_SILENT_AFTER_S)

    async def async_start(self) -> None:
        """Follow the broker connection, then subscribe; retained messages arrive at once."""
        self.active = True
        self._unsubs.append(
            mqtt.async_subscribe_connection_status(self.hass, self._async_on_connection)
        )
        self.mqtt_connected = mqtt.is_connected(self.hass)
        for topic, on_message in (
            (self.status_topic, self._async_on_status),
            (self.health_topic, self._async_on_health),
        ):
            self._unsubs.append(
                await mqtt.async_subscribe(self.hass, topic, on_message, qos=1, encoding=None)
            )
        self._notify()

    @callback
    def async_stop(self) -> None:
        """Unsubscribe; the hub forgets this agent."""
        self.active = False
        self._cancel_silence_check()
        while self._unsubs:
            self._unsubs.pop()()
        async_dispatcher_send(self.hass, SIGNAL_AGENT_UPDATE)

    @callback
    def async_add_listener(self, update: CALLBACK_TYPE) -> CALLBACK_TYPE:
        """Call `update` whenever availability or health changes; the result stops it."""
        self._listeners.append(update)
        return lambda: self._listeners.remove(update)

    def outage(self) -> tuple[float, str] | None:
        """Return since when and why the agent is unavailable, or None while it is available."""
        if self.down_since is None:
            return None
        if not self.mqtt_connected:
            return self.down_since, "unreachable (Home Assistant is not connected to the broker)"
        if self.online:
            return self.down_since, "silent (online, but no health for 3 probe intervals)"
        if self.status is None:
            return self.down_since, "no status"
        return self.down_since, "offline"

    @callback
    def _async_on_connection(self, connected: bool) -> None:
        """Follow Home Assistant's broker connection: without it nothing is known."""
        self.mqtt_connected = connected
        if connected:
            # Health published while Home Assistant was away is not silence: count anew.
            self._watch_silence()
        else:
            self._cancel_silence_check()
        self._notify()

    @callback
    def _async_on_status(self, msg: mqtt.ReceiveMessage) -> None:
        """Apply `online` / `offline` by the availability rules of this module."""
        payload = _text(msg.payload)
        self.status_received_at = time.monotonic()
        if payload == STATUS_ONLINE:
            if msg.retain and self._offline_seen and not self._health_since_offline():
                # Possibly a dead agent's `online` that a crashed broker kept: wait for news.
                LOGGER.debug("Agent %s: replayed online awaits newer health", self.agent_id)
                self.status = payload
                self._online_unconfirmed = True
                self._notify()
                return
            self._accept()
            self._set_online(payload, online=True)
        elif payload in (STATUS_OFFLINE, None):
            self._accept()
            self._set_online(payload, online=False)
        else:
            self._reject(f"status {shown(payload)} is neither {STATUS_ONLINE} nor {STATUS_OFFLINE}")

    @callback
    def _async_on_health(self, msg: mqtt.ReceiveMessage) -> None:
        """Show a valid health payload; ignore (and log once) anything else."""
        if not msg.payload:
            LOGGER.debug("Agent %s: retained health cleared", self.agent_id)
            return
        try:
            health = parse_health(msg.payload, self.agent_id)
        except InvalidHealthError as err:
            self._reject(f"health payload {err}")
            return
        if msg.retain and self.health is not None and health.ts < self.health.ts:
            LOGGER.debug("Agent %s: replayed health older than the one shown", self.agent_id)
            return
        self._accept()
        self.health = health
        self.health_received_at = time.monotonic()
        if not msg.retain:
            self._live_health_at.append(self.health_received_at)
            self.silent = False
            self._watch_silence()
            self._set_online(self.status, online=True)
        elif self._online_unconfirmed and self._health_since_offline():
            self._set_online(STATUS_ONLINE, online=True)
        else:
            self._notify()

    def _health_since_offline(self) -> bool:
        """Return whether the health shown was published after the last `offline` applied."""
        if self.health is None:
            return False
        return self._offline_health_ts is None or self.health.ts > self._offline_health_ts

    @callback
    def _set_online(self, status: str | None, *, online: bool) -> None:
        """Record the status, log a change of availability, tell listeners."""
        self.status = status
        self._online_unconfirmed = False
        if online:
            self._offline_seen = False
        else:
            self._offline_seen = True
            self._offline_health_ts = None if self.health is None else self.health.ts
            # A restarted agent may probe at another interval: learn it again.
            self._live_health_at.clear()
            self._cancel_silence_check()
            self.silent = False
        if online != self.online:
            self.online = online
            if online:
                LOGGER.info("Agent %s is online", self.agent_id)
            else:
                LOGGER.info("Agent %s is offline", self.agent_id)
        self._notify()

    @callback
    def _watch_silence(self) -> None:
        """(Re)start waiting for the next live health, once the interval is learnt."""
        self._cancel_silence_check()
        if (silent_after := self.silent_after) is not None:
            self._silence_check = async_call_later(
                self.hass,
                silent_after,
                HassJob(self._async_on_silence, "farm_resilience silence", cancel_on_shutdown=True),
            )

    @callback
    def _cancel_silence_check(self) -> None:
        """Stop waiting for health."""
        if self._silence_check is not None:
            self._silence_check()
            self._silence_check = None

    @callback
    def _async_on_silence(self, _now: datetime) -> None:
        """No health for too long from an agent that says it is online: it hangs."""
        self._silence_check = None
        if self.online and not self.silent:
            self.silent = True
            LOGGER.info(
                "Agent %s is online but sent no health for %.0f s",
                self.agent_id,
                self.silent_after or 0,
            )
            self._notify()

    @callback
    def _accept(self) -> None:
        """End a run of bad payloads: the next one warns again."""
        if self._rejecting:
            LOGGER.info("Agent %s: payloads are valid again", self.agent_id)
            self._rejecting = False

    @callback
    def _reject(self, reason: str) -> None:
        """Keep the last good values; warn on the first of a run of bad payloads only."""
        self.rejected += 1
        self.last_rejection = reason
        if self._rejecting:
            LOGGER.debug("Agent %s: ignored %s", self.agent_id, reason)
            return
        self._rejecting = True
        LOGGER.warning(
            "Agent %s: ignored %s; the last good values stay (further ones are logged at debug)",
            self.agent_id,
            reason,
        )

    @callback
    def _notify(self) -> None:
        """Track since when the agent is unavailable and tell entities and the hub."""
        if self.available:
            self.down_since = None
        elif self.down_since is None:
            self.down_since = time.monotonic()
        for update in list(self._listeners):
            update()
        async_dispatcher_send(self.hass, SIGNAL_AGENT_UPDATE)


def _text(payload: str | bytes | bytearray) -> str | None:
    """Return a status payload as text; None for an empty (cleared) one."""
    if isinstance(payload, bytes | bytearray):
        payload = payload.decode("utf-8", errors="replace")
    return payload.strip() or None
