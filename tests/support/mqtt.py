"""Devices and Home Assistant on MQTT, for the tests: publishers of readings, a watcher.

What the agent publishes and a watcher receives joins SEEN_OUTPUT (scanned for secrets).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from tests.support.agent import SEEN_OUTPUT


class Publisher:
    """A farm device: publishes QoS 1 readings and waits for the broker's PUBACK.

    `persistent` keeps an MQTT 3.1.1 session on the broker, so in-flight QoS 2 messages
    survive a broker restart exactly once (chaos tests); otherwise MQTT 5, no session.
    """

    def __init__(self, port: int, client_id: str, *, persistent: bool = False) -> None:
        if persistent:
            self.client = paho.Client(
                CallbackAPIVersion.VERSION2,
                client_id=client_id,
                protocol=MQTTProtocolVersion.MQTTv311,
                clean_session=False,
            )
        else:
            self.client = paho.Client(
                CallbackAPIVersion.VERSION2,
                client_id=client_id,
                protocol=MQTTProtocolVersion.MQTTv5,
            )
        self.client.max_inflight_messages_set(1000)
        self.client.max_queued_messages_set(0)
        self._acked: set[int] = set()
        self._acked_changed = threading.Condition()
        self.client.on_publish = self._on_publish
        connected = threading.Event()
        self.client.on_connect = lambda *args: connected.set()
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert connected.wait(10), "publisher could not connect"

    def _on_publish(self, client: paho.Client, userdata: Any, mid: int, *args: Any) -> None:
        with self._acked_changed:
            self._acked.add(mid)
            self._acked_changed.notify_all()

    def publish(self, topic: str, payload: bytes | str, *, qos: int = 1, wait: bool = False) -> int:
        """Queue one reading (paho sends it now, or after a reconnect); returns its packet id."""
        mid = self.client.publish(topic, payload, qos=qos).mid
        if wait:
            self.wait_acked([mid], 10)
        return mid

    def wait_acked(self, mids: list[int], timeout: float) -> None:
        """Until the broker acknowledged every one of these packets (across reconnects)."""
        pending = set(mids)
        deadline = time.monotonic() + timeout
        with self._acked_changed:
            while pending - self._acked:
                remaining = deadline - time.monotonic()
                assert remaining > 0, f"{len(pending - self._acked)} readings never acknowledged"
                self._acked_changed.wait(min(remaining, 1.0))
            self._acked -= pending

    def publish_all(self, readings: list[tuple[str, bytes | str]]) -> None:
        self.wait_acked([self.publish(topic, payload) for topic, payload in readings], 30)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@contextlib.contextmanager
def publisher(port: int, client_id: str) -> Iterator[Publisher]:
    device = Publisher(port, client_id)
    try:
        yield device
    finally:
        device.close()


class StreamPublisher:
    """Publishes numbered readings at a steady rate on its own thread, like a field of sensors."""

    def __init__(
        self,
        port: int,
        client_id: str,
        topics: list[str],
        total: int,
        rate: float,
        *,
        qos: int = 1,
    ) -> None:
        self.topics = topics
        self.total = total
        self.rate = rate
        self.qos = qos
        self.sent: list[tuple[str, str]] = []
        self._device = Publisher(port, client_id, persistent=qos == 2)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.done = threading.Event()
        self.error: BaseException | None = None

    def start(self) -> StreamPublisher:
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            self._publish_stream()
        except BaseException as err:  # reported by join(), not lost on a thread
            self.error = err
        self.done.set()

    def _publish_stream(self) -> None:
        started = time.monotonic()
        mids = []
        for index in range(self.total):
            topic = self.topics[index % len(self.topics)]
            payload = json.dumps({"n": index, "value": round(20 + (index % 50) / 10, 1)})
            mids.append(self._device.publish(topic, payload, qos=self.qos))
            self.sent.append((topic, payload))
            delay = started + (index + 1) / self.rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        self._device.wait_acked(mids, 300)

    def join(self, timeout: float = 120) -> None:
        assert self.done.wait(timeout), "publisher did not finish"
        self._device.close()
        if self.error is not None:
            raise self.error


@dataclass(frozen=True)
class Message:
    topic: str
    payload: bytes
    retain: bool

    @property
    def text(self) -> str:
        return self.payload.decode()

    def json(self) -> Any:
        return json.loads(self.payload)


class Watcher:
    """An MQTT client that records every message on its subscriptions, like Home Assistant."""

    def __init__(self, port: int, client_id: str, topics: list[str]) -> None:
        self.messages: list[Message] = []
        self._lock = threading.Lock()
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=MQTTProtocolVersion.MQTTv5
        )
        subscribed = threading.Event()
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *args: subscribed.set()
        self.client.on_connect = lambda client, *args: client.subscribe([(t, 1) for t in topics])
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert subscribed.wait(10), "watcher could not subscribe"

    def _on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        # What the agent publishes is scanned for secrets at the end of the session.
        SEEN_OUTPUT.append(bytes(message.payload).decode(errors="replace"))
        with self._lock:
            self.messages.append(Message(message.topic, bytes(message.payload), message.retain))

    def on(self, topic: str) -> list[Message]:
        with self._lock:
            return [message for message in self.messages if message.topic == topic]

    def clear(self) -> None:
        with self._lock:
            self.messages.clear()

    def publish(self, topic: str, payload: str, retain: bool = False) -> None:
        self.client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(10)

    async def wait_for(
        self,
        topic: str,
        accept: Callable[[Message], bool] = lambda message: True,
        timeout: float = 15,
    ) -> Message:
        """The first message on `topic` (received so far or later) that `accept` likes."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [message for message in self.on(topic) if accept(message)]
            if found:
                return found[0]
            await asyncio.sleep(0.05)
        seen = [(m.topic, m.payload[:200]) for m in self.messages[-5:]]
        raise AssertionError(f"nothing accepted on {topic} within {timeout} s; last: {seen}")

    async def wait_for_health(
        self, topic: str, accept: Callable[[dict[str, Any]], bool], timeout: float = 15
    ) -> dict[str, Any]:
        message = await self.wait_for(topic, lambda m: accept(json.loads(m.payload)), timeout)
        health: dict[str, Any] = message.json()
        return health

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
