"""Real-broker helpers: a stand-in agent publishing over paho, waiting for MQTT traffic in HA.

Home Assistant's MQTT client debounces subscriptions and reconnects with timers;
under a frozen clock those only run when time moves, so `wait_until` nudges the
clock in small steps while real network traffic arrives.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as paho
import pytest
from freezegun.api import FrozenDateTimeFactory
from homeassistant.components import mqtt
from homeassistant.components.mqtt.client import RECONNECT_INTERVAL_SECONDS
from homeassistant.core import HomeAssistant, State
from homeassistant.helpers import entity_registry as er
from paho.mqtt.enums import CallbackAPIVersion
from pytest_homeassistant_custom_component.common import async_fire_time_changed_exact

from custom_components.farm_resilience.const import DOMAIN
from tests.contract import load_vectors
from tools.services import Mosquitto

VECTORS = load_vectors()
AGENT_ID: str = VECTORS["agent_id"]
STATUS_TOPIC: str = VECTORS["status_topic"]
HEALTH_TOPIC: str = VECTORS["health_topic"]
ONLINE: str = VECTORS["status_payloads"]["online"]
OFFLINE: str = VECTORS["status_payloads"]["offline"]
ACCEPTED: list[dict[str, Any]] = VECTORS["accepted"]
REJECTED: list[dict[str, Any]] = VECTORS["rejected"]
# Contract vector `expect` keys that are binary sensors; the others are sensors.
BINARY_KEYS = ("connectivity", "backend_problem")
STEP_S = 0.05
ROUND_S = 0.01
BIRTH_LOGGED = "MQTT client initialized, birth message sent"


class StandInAgent:
    """Publishes what an agent publishes (retained, QoS 1), with its last will, over paho."""

    started = 0

    def __init__(self, port: int, agent_id: str = AGENT_ID, prefix: str = "farm_resilience"):
        """Connect with the agent's last will (`offline`, retained) and wait for the broker."""
        self.status_topic = f"{prefix}/agent/{agent_id}/status"
        self.health_topic = f"{prefix}/agent/{agent_id}/health"
        # A client id of its own: a second stand-in must not take over the first one's session.
        StandInAgent.started += 1
        client_id = f"stand-in-{agent_id}-{StandInAgent.started}"
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id)
        self.client.will_set(self.status_topic, OFFLINE, qos=1, retain=True)
        connected = threading.Event()
        self.client.on_connect = lambda *args: connected.set()
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert connected.wait(10), "the stand-in agent could not connect"
        self.alive = True

    def publish(self, topic: str, payload: str, *, retain: bool = True) -> None:
        """Publish and wait for the broker's PUBACK."""
        self.client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(10)

    def status(self, payload: str, *, retain: bool = True) -> None:
        """Publish a status payload (`online`, `offline`, or anything)."""
        self.publish(self.status_topic, payload, retain=retain)

    def health(self, health: dict[str, Any] | str, *, retain: bool = True) -> None:
        """Publish a health payload: a dict as JSON, a string as it is."""
        payload = health if isinstance(health, str) else json.dumps(health)
        self.publish(self.health_topic, payload, retain=retain)

    def die(self) -> None:
        """Drop the connection without DISCONNECT, as a killed process does: the will fires."""
        self.client.loop_stop()
        socket = self.client.socket()
        assert socket is not None
        socket.close()
        self.alive = False

    def leave(self) -> None:
        """Disconnect cleanly (no will), leaving the retained topics as they are."""
        if self.alive:
            self.client.disconnect()
            self.client.loop_stop()
            self.alive = False


def clear_retained(port: int, *topics: str) -> None:
    """Remove retained messages a test left on the shared broker."""
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id="retained-cleaner")
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        for topic in topics:
            client.publish(topic, b"", qos=1, retain=True).wait_for_publish(10)
    finally:
        client.disconnect()
        client.loop_stop()


async def wait_until(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    condition: Callable[[], bool],
    what: str,
    timeout_s: float = 10.0,
    step_s: float = STEP_S,
) -> None:
    """Let real MQTT traffic arrive until `condition` holds; frozen time moves `step_s` a round.

    Each round sleeps 10 ms of real time in the executor, so the timeout counts
    rounds, not the (frozen) clock.
    """
    for _ in range(int(timeout_s / ROUND_S)):
        await hass.async_block_till_done()
        if condition():
            return
        freezer.tick(step_s)
        async_fire_time_changed_exact(hass)
        await hass.async_add_executor_job(time.sleep, ROUND_S)
    raise AssertionError(f"timed out waiting for {what}")


async def advance_live(
    hass: HomeAssistant, freezer: FrozenDateTimeFactory, seconds: float, step_s: float = 20.0
) -> None:
    """Move frozen time forward with the broker connected, running what falls due.

    In steps shorter than HA's MQTT keepalive (60 s), each followed by a moment of
    real time: a jump past the keepalive with no PINGRESP read in between makes
    paho drop the connection.
    """
    remaining = seconds
    while remaining > 0:
        step = min(step_s, remaining)
        remaining -= step
        await hass.async_block_till_done()
        freezer.tick(step)
        async_fire_time_changed_exact(hass)
        await hass.async_block_till_done()
        async_fire_time_changed_exact(hass)
        await settle(hass, rounds=2)


async def settle(hass: HomeAssistant, rounds: int = 20) -> None:
    """Give in-flight messages real time to arrive without moving the clock (no news expected)."""
    for _ in range(rounds):
        await hass.async_add_executor_job(time.sleep, ROUND_S)
        await hass.async_block_till_done()


def entity_id(hass: HomeAssistant, key: str, agent_id: str = AGENT_ID) -> str:
    """Return the entity id of an agent entity by its vector `expect` key."""
    platform = "binary_sensor" if key in BINARY_KEYS else "sensor"
    found = er.async_get(hass).async_get_entity_id(platform, DOMAIN, f"agent_{agent_id}_{key}")
    assert found is not None, f"no {platform} for {key}"
    return found


def state(hass: HomeAssistant, key: str, agent_id: str = AGENT_ID) -> State:
    """Return the state of an agent entity by its vector `expect` key."""
    found = hass.states.get(entity_id(hass, key, agent_id))
    assert found is not None
    return found


def shown(hass: HomeAssistant, expect: dict[str, Any], agent_id: str = AGENT_ID) -> dict[str, Any]:
    """Return what the agent's entities show, in the shape of a vector's `expect`."""
    values: dict[str, Any] = {}
    for key, expected in expect.items():
        if key == "problems":
            values[key] = state(hass, "backend_problem", agent_id).attributes.get("problems")
            continue
        value = state(hass, key, agent_id).state
        if isinstance(expected, int | float) and value not in ("unknown", "unavailable"):
            values[key] = float(value) if isinstance(expected, float) else int(value)
        else:
            values[key] = value
    return values


def take_integration_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Return the integration's warnings and remove them from the log (they were expected)."""
    taken = [
        record
        for record in caplog.records
        if record.name.startswith("custom_components.farm_resilience")
        and record.levelno >= logging.WARNING
    ]
    caplog.records[:] = [record for record in caplog.records if record not in taken]
    return [record.getMessage() for record in taken]


def errors_logged(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Return every error or exception anyone logged."""
    return [
        f"{record.name}: {record.getMessage()}"
        for record in caplog.records
        if record.levelno >= logging.ERROR or record.exc_info
    ]


def births(caplog: pytest.LogCaptureFixture) -> int:
    """Return how often HA's MQTT client finished connecting (it logs its birth message)."""
    return sum(1 for record in caplog.records if record.getMessage() == BIRTH_LOGGED)


async def wait_for_birth(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    caplog: pytest.LogCaptureFixture,
    count: int,
) -> None:
    """Wait until HA's MQTT client has sent its birth message `count` times.

    The client sends it 5 s (DISCOVERY_COOLDOWN) after connecting; a broker going
    away before that makes HA core log "Task exception was never retrieved".
    """
    await wait_until(
        hass, freezer, lambda: births(caplog) >= count, "HA's MQTT birth message", step_s=0.5
    )


async def restart_broker(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    caplog: pytest.LogCaptureFixture,
    broker: Mosquitto,
    while_ha_is_away: Callable[[], None] | None = None,
) -> None:
    """Restart the broker gracefully (it keeps retained messages) and let HA reconnect.

    `while_ha_is_away` runs once the broker is back but before HA reconnects: what
    it publishes, HA only gets as a retained replay.
    """
    await hass.async_add_executor_job(broker.stop)
    await wait_until(hass, freezer, lambda: not mqtt.is_connected(hass), "HA to lose the broker")
    await settle(hass)  # HA's first, immediate reconnect fails; the next one waits for the clock
    await hass.async_add_executor_job(broker.start)
    if while_ha_is_away is not None:
        await hass.async_add_executor_job(while_ha_is_away)
    born = births(caplog)
    freezer.tick(RECONNECT_INTERVAL_SECONDS)
    async_fire_time_changed_exact(hass)
    await wait_until(hass, freezer, lambda: mqtt.is_connected(hass), "HA to reconnect")
    await wait_for_birth(hass, freezer, caplog, born + 1)
