"""The agent link: one edge agent's status and health topics, followed through HA's MQTT.

A push coordinator: every message is read (strictly: a payload that cannot be
trusted changes nothing), applied by the availability rules (`agent_availability`)
and handed to the agent's entities with `async_set_updated_data`.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from homeassistant.components import mqtt
from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.device_registry import DeviceInfo
from homeassistant.helpers.dispatcher import async_dispatcher_send
from homeassistant.helpers.update_coordinator import DataUpdateCoordinator

from .agent_availability import AgentAvailability, AgentState
from .agent_health import InvalidHealthError, parse_health, shown
from .const import (
    AGENT_MODEL,
    CONF_AGENT_ID,
    CONF_TOPIC_PREFIX,
    DEFAULT_TOPIC_PREFIX,
    DOMAIN,
    HUB_NAME,
    LOGGER,
    SIGNAL_AGENT_UPDATE,
    STATUS_OFFLINE,
    STATUS_ONLINE,
)
from .timing import MonotonicCall

if TYPE_CHECKING:
    from .entries import AgentConfigEntry


def status_topic(prefix: str, agent_id: str) -> str:
    """Return the retained `online` / `offline` topic of an agent."""
    return f"{prefix}/agent/{agent_id}/status"


def health_topic(prefix: str, agent_id: str) -> str:
    """Return the retained health JSON topic of an agent."""
    return f"{prefix}/agent/{agent_id}/health"


def device_identifiers(agent_id: str) -> tuple[tuple[str, str], tuple[str, str]]:
    """Return the agent device's identifiers: the integration's, and its MQTT discovery's.

    The agent's own MQTT discovery (agent/farm_agent/discovery.py) announces the
    same device as `farm_agent_<agent_id>`; carrying that identifier too, Home
    Assistant's device registry keeps one device with both config entries.
    """
    return (DOMAIN, f"agent_{agent_id}"), (mqtt.DOMAIN, f"farm_agent_{agent_id}")


def agent_device_info(agent_id: str) -> DeviceInfo:
    """Return the agent's one device, named after its agent_id."""
    return DeviceInfo(
        identifiers=set(device_identifiers(agent_id)),
        name=agent_id,
        manufacturer=HUB_NAME,
        model=AGENT_MODEL,
    )


@callback
def async_join_discovery_device(hass: HomeAssistant, entry: AgentConfigEntry) -> None:
    """Move the agent's entities from an older device of its own onto the discovery's device.

    Before the agent was one device, the integration and the agent's own MQTT
    discovery made a device each. The entities move (keeping their ids) before
    they are set up, and the emptied device goes; set-up then finds one device.
    """
    our_identifier, discovery_identifier = device_identifiers(entry.data[CONF_AGENT_ID])
    devices = dr.async_get(hass)
    ours = devices.async_get_device(identifiers={our_identifier})
    theirs = devices.async_get_device(identifiers={discovery_identifier})
    if ours is None or theirs is None or ours.id == theirs.id:
        return
    entities = er.async_get(hass)
    for entity in er.async_entries_for_device(entities, ours.id, include_disabled_entities=True):
        entities.async_update_entity(entity.entity_id, device_id=theirs.id)
    devices.async_update_device(ours.id, remove_config_entry_id=entry.entry_id)


class AgentLink(DataUpdateCoordinator[AgentState]):
    """Runtime data of an agent entry: the agent's availability and health, pushed to entities."""

    config_entry: AgentConfigEntry

    def __init__(self, hass: HomeAssistant, entry: AgentConfigEntry) -> None:
        """Prepare; `async_start` subscribes."""
        self.agent_id: str = entry.data[CONF_AGENT_ID]
        super().__init__(hass, LOGGER, config_entry=entry, name=f"agent {self.agent_id}")
        topic_prefix: str = entry.data.get(CONF_TOPIC_PREFIX, DEFAULT_TOPIC_PREFIX)
        self.status_topic = status_topic(topic_prefix, self.agent_id)
        self.health_topic = health_topic(topic_prefix, self.agent_id)
        self.unique_id_prefix = f"agent_{self.agent_id}"
        self.device_info = agent_device_info(self.agent_id)
        self.availability = AgentAvailability(time.monotonic())
        self.data = self.availability.state()
        self.status_received_at: float | None = None
        self.rejected = 0
        self.last_rejection: str | None = None
        # The software version last shown on the agent's device.
        self.sw_version: str | None = None
        self._rejecting = False
        self._silence_check = MonotonicCall(hass, self._async_on_silence, cancel_on_shutdown=True)
        self._unsubs: list[CALLBACK_TYPE] = []

    async def async_start(self) -> None:
        """Follow the broker connection, then subscribe; retained messages arrive at once."""
        self._unsubs.append(
            mqtt.async_subscribe_connection_status(self.hass, self._async_on_connection)
        )
        self.availability.connection_changed(mqtt.is_connected(self.hass), time.monotonic())
        for topic, on_message in (
            (self.status_topic, self._async_on_status),
            (self.health_topic, self._async_on_health),
        ):
            self._unsubs.append(
                await mqtt.async_subscribe(self.hass, topic, on_message, qos=1, encoding=None)
            )
        self._async_changed()

    @callback
    def async_stop(self) -> None:
        """Unsubscribe; the hub forgets this agent."""
        self._silence_check.cancel()
        while self._unsubs:
            self._unsubs.pop()()
        async_dispatcher_send(self.hass, SIGNAL_AGENT_UPDATE)

    @callback
    def _async_on_connection(self, connected: bool) -> None:
        """Follow Home Assistant's broker connection: without it nothing is known."""
        self.availability.connection_changed(connected, time.monotonic())
        self._async_changed()

    @callback
    def _async_on_status(self, msg: mqtt.ReceiveMessage) -> None:
        """Apply `online`, `offline` or a cleared status; ignore (and log once) anything else."""
        payload = _text(msg.payload)
        self.status_received_at = now = time.monotonic()
        if payload not in (STATUS_ONLINE, STATUS_OFFLINE, None):
            self._reject(f"status {shown(payload)} is neither {STATUS_ONLINE} nor {STATUS_OFFLINE}")
            return
        if self.availability.status_received(payload, replayed=msg.retain, now=now):
            self._accept()
        else:
            LOGGER.debug("Agent %s: replayed online awaits newer health", self.agent_id)
        self._async_changed()

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
        now = time.monotonic()
        if not self.availability.health_received(health, replayed=msg.retain, now=now):
            LOGGER.debug("Agent %s: replayed health older than the one shown", self.agent_id)
            return
        self._accept()
        self._async_show_version(health.version)
        self._async_changed()

    @callback
    def _async_show_version(self, version: str | None) -> None:
        """Show the agent's software version on its device when it reports one that is new.

        An agent that reports none (before 0.2) leaves the device's version as it is.
        """
        if version is None or version == self.sw_version:
            return
        self.sw_version = version
        dr.async_get(self.hass).async_get_or_create(
            config_entry_id=self.config_entry.entry_id,
            identifiers=set(device_identifiers(self.agent_id)),
            name=self.agent_id,
            manufacturer=HUB_NAME,
            model=AGENT_MODEL,
            sw_version=version,
        )

    @callback
    def _async_changed(self) -> None:
        """Log a change of online, follow the silence deadline, tell entities and the hub."""
        state = self.availability.state()
        if state.online != self.data.online:
            LOGGER.info("Agent %s is %s", self.agent_id, "online" if state.online else "offline")
        self._follow_silence()
        self.async_set_updated_data(state)
        async_dispatcher_send(self.hass, SIGNAL_AGENT_UPDATE)

    @callback
    def _follow_silence(self) -> None:
        """Wake up when the agent would be silent; move or drop the wake-up when that changes."""
        if (silent_at := self.availability.silent_at) is None:
            self._silence_check.cancel()
        else:
            self._silence_check.schedule(silent_at)

    @callback
    def _async_on_silence(self, now: float) -> None:
        """No health for too long from an agent that says it is online: it hangs."""
        if self.availability.silence_check(now):
            LOGGER.info(
                "Agent %s is online but sent no health for %.0f s",
                self.agent_id,
                self.availability.silent_after or 0,
            )
            self._async_changed()
        else:
            self._follow_silence()  # woken a moment early: wait the rest

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


def _text(payload: str | bytes | bytearray) -> str | None:
    """Return a status payload as text; None for an empty (cleared) one."""
    if isinstance(payload, bytes | bytearray):
        payload = payload.decode("utf-8", errors="replace")
    return payload.strip() or None
