"""The agent's paho client (buffered reads, PUBACKs in bulk) against a real Mosquitto."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from farm_agent.config import MqttConfig
from farm_agent.mqtt import ConfirmedPublisher
from farm_agent.mqtt.buffered import BufferedClient
from tests.support.mqtt import publisher
from tools.services import Mosquitto


class Subscriber:
    """A BufferedClient with a persistent session, collecting (payload, dup) in arrival order."""

    def __init__(self, port: int, client_id: str, topic: str) -> None:
        self.client = BufferedClient(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=MQTTProtocolVersion.MQTTv5,
            manual_ack=True,
        )
        self.received: list[tuple[bytes, int, bool]] = []
        self.pause_at: int | None = None
        self._arrived = threading.Condition()
        subscribed = threading.Event()
        self.client.on_connect = lambda client, *_: client.subscribe(
            [(topic, SubscribeOptions(qos=1))]
        )
        self.client.on_subscribe = lambda *_: subscribed.set()
        self.client.on_message = self._on_message
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        properties.SessionExpiryInterval = 300
        self.client.connect("127.0.0.1", port, clean_start=False, properties=properties)
        self.client.loop_start()
        assert subscribed.wait(10), "subscriber could not subscribe"

    def _on_message(self, client: paho.Client, userdata: object, message: paho.MQTTMessage) -> None:
        with self._arrived:
            self.received.append((message.payload, message.mid, bool(message.dup)))
            if len(self.received) == self.pause_at:
                self.client.pause_reading()
            self._arrived.notify_all()

    def wait_for(self, count: int, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        with self._arrived:
            while len(self.received) < count:
                remaining = deadline - time.monotonic()
                assert remaining > 0, f"{len(self.received)} of {count} messages arrived"
                self._arrived.wait(remaining)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


Subscribe = Callable[[int, str, str], Subscriber]


@pytest.fixture
def subscribe() -> Iterator[Subscribe]:
    opened: list[Subscriber] = []

    def open_subscriber(port: int, client_id: str, topic: str) -> Subscriber:
        subscriber = Subscriber(port, client_id, topic)
        opened.append(subscriber)
        return subscriber

    yield open_subscriber
    for subscriber in opened:
        subscriber.close()


def payload(number: int) -> bytes:
    # Sizes from 1 byte to 200 KB, so packets straddle every 64 KiB read.
    size = (1, 17, 300, 4_000, 70_000, 200_000)[number % 6]
    return (str(number).encode() + b"|" + bytes(range(256)) * (size // 256 + 1))[:size]


def test_a_burst_of_mixed_sizes_arrives_whole_and_in_order(
    mosquitto: Mosquitto, subscribe: Subscribe, test_id: str
) -> None:
    topic = f"{test_id}/burst"
    subscriber = subscribe(mosquitto.port, f"{test_id}-sub", topic)
    sent = [payload(number) for number in range(600)]

    with publisher(mosquitto.port, f"{test_id}-pub") as device:
        device.publish_all([(topic, body) for body in sent])
    subscriber.wait_for(len(sent))

    assert [body for body, _, _ in subscriber.received] == sent


def test_bulk_acks_reach_the_broker_and_what_was_not_acked_comes_back(
    mosquitto: Mosquitto, subscribe: Subscribe, test_id: str
) -> None:
    topic = f"{test_id}/acks"
    client_id = f"{test_id}-sub"
    first = subscribe(mosquitto.port, client_id, topic)
    sent = [f"{number}".encode() for number in range(400)]
    with publisher(mosquitto.port, f"{test_id}-pub") as device:
        device.publish_all([(topic, body) for body in sent])
    first.wait_for(len(sent))

    first.client.ack_all([mid for _, mid, _ in first.received[:250]])
    time.sleep(0.5)
    first.close()
    again = subscribe(mosquitto.port, client_id, topic)
    again.wait_for(150)
    time.sleep(0.5)

    assert [(body, dup) for body, _, dup in again.received] == [(body, True) for body in sent[250:]]


def test_a_paused_client_leaves_the_rest_at_the_broker_until_it_resumes(
    mosquitto: Mosquitto, subscribe: Subscribe, test_id: str
) -> None:
    topic = f"{test_id}/paused"
    subscriber = subscribe(mosquitto.port, f"{test_id}-sub", topic)
    with publisher(mosquitto.port, f"{test_id}-pub") as device:
        device.publish_all([(topic, b"before")])
        subscriber.wait_for(1)
        subscriber.client.pause_reading()
        sent = [f"{number}".encode() for number in range(300)]
        device.publish_all([(topic, body) for body in sent])
        time.sleep(1.0)
        held_back = len(subscriber.received)

        subscriber.client.resume_reading()
        subscriber.wait_for(1 + len(sent))

    assert held_back == 1
    assert [body for body, _, _ in subscriber.received] == [b"before", *sent]


def test_packets_read_before_a_pause_are_handled_as_soon_as_it_ends(
    mosquitto: Mosquitto, subscribe: Subscribe, test_id: str
) -> None:
    # Paused in the middle of what one read brought in, with nothing more coming:
    # select() sees no new bytes, and the client alone must remember the rest.
    topic = f"{test_id}/resumed"
    subscriber = subscribe(mosquitto.port, f"{test_id}-sub", topic)
    subscriber.client.pause_reading()
    sent = [f"reading {number}".encode() for number in range(50)]
    with publisher(mosquitto.port, f"{test_id}-pub") as device:
        device.publish_all([(topic, body) for body in sent])
    time.sleep(0.5)
    subscriber.pause_at = 5
    subscriber.client.resume_reading()
    time.sleep(0.5)
    assert len(subscriber.received) == 5

    subscriber.client.resume_reading()
    subscriber.wait_for(len(sent), timeout=5)

    assert [body for body, _, _ in subscriber.received] == sent


def test_a_quiet_client_pings_when_its_keepalive_is_due_and_stays_connected(
    mosquitto: Mosquitto, test_id: str
) -> None:
    # Its thread sleeps until a ping is due rather than waking every second: the
    # time of the last traffic, which tells when, is one of paho's internals.
    client = BufferedClient(
        CallbackAPIVersion.VERSION2,
        client_id=f"{test_id}-quiet",
        protocol=MQTTProtocolVersion.MQTTv5,
        manual_ack=True,
    )
    log: list[str] = []
    pinged = threading.Event()
    disconnected = threading.Event()

    def on_log(client: paho.Client, userdata: object, level: int, message: str) -> None:
        log.append(message)
        if "PINGRESP" in message:
            pinged.set()

    client.on_log = on_log
    client.on_disconnect = lambda *_: disconnected.set()
    client.connect("127.0.0.1", mosquitto.port, keepalive=1)
    client.loop_start()
    try:
        # Two pings answered in turn: the second needs the wait after the first right.
        assert pinged.wait(10), f"no ping answered; paho said: {log[-5:]}"
        pinged.clear()
        assert pinged.wait(10), f"no second ping answered; paho said: {log[-5:]}"
        assert not disconnected.is_set()
        assert client.is_connected()
    finally:
        client.disconnect()
        client.loop_stop()


def wakeups(thread: threading.Thread) -> int:
    """How often `thread` went to sleep and was woken (voluntary context switches)."""
    status = Path(f"/proc/self/task/{thread.native_id}/status").read_text()
    return int(status.split("voluntary_ctxt_switches:")[1].split()[0])


async def test_the_task_publisher_sleeps_while_it_has_nothing_to_send(
    mosquitto: Mosquitto, test_id: str
) -> None:
    config = MqttConfig(
        host="127.0.0.1",
        port=mosquitto.port,
        username=None,
        password=None,
        tls=None,
        client_id=f"{test_id}-agent",
        topics=(f"{test_id}/#",),
        qos=1,
        topic_prefix="farm",
        discovery_prefix=None,
        max_payload_bytes=65536,
        keepalive_s=60,
        session_expiry_s=300,
        receive_maximum=100,
    )
    sender = ConfirmedPublisher(config, f"{test_id}-tasks")
    try:
        await sender.publish(f"{test_id}/alert", b"frost")
        thread = sender._client._thread  # type: ignore[union-attr]
        assert thread is not None
        before = wakeups(thread)
        await asyncio.sleep(2.5)
        # paho's own loop wakes every second; nothing is due for a minute (keepalive).
        assert wakeups(thread) - before <= 1
        await sender.publish(f"{test_id}/alert", b"frost again")
    finally:
        await sender.close()
