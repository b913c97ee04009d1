"""MQTT probe: publish to the agent's own probe topic and time the message's return."""

from __future__ import annotations

import asyncio
import secrets
import time
from typing import Any

from farm_agent.health.probes.result import ProbeKind, ProbeResult
from farm_agent.mqtt import Message, MqttLink

KIND = ProbeKind.MQTT
NAME = "mqtt_round_trip"


class MqttRoundTrip:
    """Times a QoS 0 message through the broker and back on the agent's own link."""

    def __init__(self, link: MqttLink, topic: str) -> None:
        self._link = link
        self._topic = topic
        self._loop = asyncio.get_running_loop()
        self._waiting: dict[bytes, asyncio.Future[float]] = {}
        self._connected = asyncio.Event()
        if link.connected:
            self._connected.set()
        # Messages on the probe topic go here, never to ingest (not readings, never acked).
        link.subscribe(topic, self._on_message, qos=0)
        link.add_connect_listener(self._on_connect)
        link.add_disconnect_listener(self._connected.clear)

    def _on_connect(self, session_present: bool) -> None:
        self._connected.set()

    def _on_message(self, client: Any, userdata: Any, message: Message) -> None:
        # paho's thread: note the time now, hand it to the event loop.
        arrived = time.perf_counter()
        self._loop.call_soon_threadsafe(self._returned, bytes(message.payload), arrived)

    def _returned(self, token: bytes, arrived: float) -> None:
        future = self._waiting.pop(token, None)
        if future is not None and not future.done():
            future.set_result(arrived)

    async def run(self, timeout_s: float) -> ProbeResult:
        """Probe once, within `timeout_s`; waits for the broker first if not connected yet."""
        deadline = self._loop.time() + timeout_s
        try:
            await asyncio.wait_for(self._connected.wait(), timeout_s)
        except TimeoutError:
            config = self._link.config
            detail = f"broker {config.host}:{config.port} not connected"
            return ProbeResult(NAME, KIND, False, None, detail)
        self._link.subscribe_refused_again()
        token = secrets.token_hex(8).encode()
        future: asyncio.Future[float] = self._loop.create_future()
        self._waiting[token] = future
        started = time.perf_counter()
        try:
            self._link.publish(self._topic, token, qos=0)
            arrived = await asyncio.wait_for(future, max(0.0, deadline - self._loop.time()))
        except TimeoutError:
            return ProbeResult(NAME, KIND, False, None, f"no echo within {timeout_s:g} s")
        finally:
            self._waiting.pop(token, None)
        latency_ms = (arrived - started) * 1000
        return ProbeResult(NAME, KIND, True, latency_ms, "own probe topic")

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    @property
    def subscription_problems(self) -> tuple[str, ...]:
        return self._link.readings_problems
