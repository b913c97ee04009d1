"""The agent's one MQTT connection: persistent session, reconnect with backoff, TLS and auth.

paho runs its network loop on its own thread; connection events are handed to the
event loop, so listeners run there. Ingest and publishing share this link.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import struct
import threading
from collections.abc import Callable, Sequence
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.client import PUBACK
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from farm_agent.config import MqttConfig

_LOGGER = logging.getLogger(__name__)

ConnectListener = Callable[[bool], None]
RECONNECT_MIN_S = 1
RECONNECT_MAX_S = 60
CONNECT_TIMEOUT_S = 4.0
# Packet type, remaining length 2 (MQTT 5: reason code 0, success, left out), packet id.
_PUBACK = struct.Struct("!BBH")


class BufferedClient(paho.Client):
    """paho's client, reading its socket up to 64 KiB at a time and acking in bulk.

    paho 2.1 reads a packet with three recv() calls or more (type, length, rest),
    handles one packet per pass of its loop, and sends each PUBACK on its own after
    waking its thread through a socket pair. At thousands of readings a second those
    system calls, each dropping and retaking the GIL that the spool thread waits for,
    cost the relay more than anything else it does. The read buffer belongs to one
    socket, so a reconnect never sees bytes of the connection before. These hooks
    are paho's internals: tests/agent/test_mqtt_client.py fails if a paho release
    moves them.
    """

    READ_SIZE = 65536
    # While reading is paused, paho's loop still runs this often: it sends the acks,
    # publishes and keepalives queued meanwhile.
    PAUSED_POLL_S = 0.05

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._read_from: object = None
        self._read_buffer = bytearray()
        self._paused_on: object = None
        self._may_read = threading.Event()
        self._may_read.set()

    def pause_reading(self) -> None:
        """Read no more from this connection: TCP keeps the rest at the broker.

        The pause holds for the current socket only: after a reconnect the CONNACK
        and whatever follows are read, so status and health still get through.
        The caller serialises pause and resume.
        """
        self._may_read.clear()
        self._paused_on = self._sock

    def resume_reading(self) -> None:
        was_paused = self._paused_on is not None
        self._paused_on = None
        self._may_read.set()
        if was_paused and self._read_buffer and self._sockpairW is not None:
            # Packets read before the pause wait in the buffer, where select() cannot
            # see them: wake paho's loop, whose loop_misc() handles them.
            with contextlib.suppress(BlockingIOError):
                self._sockpairW.send(b"0")

    def _reading_paused(self) -> bool:
        return self._paused_on is not None and self._paused_on is self._sock

    def _sock_recv(self, bufsize: int) -> bytes:
        if self._sock is not self._read_from:
            self._read_from = self._sock
            self._read_buffer.clear()
        if not self._read_buffer:
            chunk = super()._sock_recv(self.READ_SIZE)
            if len(chunk) <= bufsize:
                return chunk
            self._read_buffer += chunk
        data = bytes(self._read_buffer[:bufsize])
        del self._read_buffer[:bufsize]
        return data

    def _buffered_packets_to_handle(self) -> bool:
        return (
            bool(self._read_buffer)
            and not self._reading_paused()
            and self._sock is not None
            and self._sock is self._read_from
        )

    def loop_misc(self) -> MQTTErrorCode:
        if self._buffered_packets_to_handle():
            result = self.loop_read()
            if result != MQTTErrorCode.MQTT_ERR_SUCCESS:
                return result
        return super().loop_misc()

    def ack_all(self, mids: Sequence[int]) -> None:
        """PUBACK these QoS 1 messages in one packet write: one wake-up, one system call."""
        if mids:
            packet = b"".join([_PUBACK.pack(PUBACK, 2, mid) for mid in mids])
            self._packet_queue(PUBACK, packet, 0, 1)

    def loop_read(self, max_packets: int = 1) -> MQTTErrorCode:
        if self._reading_paused():
            self._may_read.wait(self.PAUSED_POLL_S)
            if self._reading_paused():
                return MQTTErrorCode.MQTT_ERR_SUCCESS
        result = super().loop_read(max_packets)
        # select() cannot see what is already buffered: handle every packet in it now.
        while result == MQTTErrorCode.MQTT_ERR_SUCCESS and self._buffered_packets_to_handle():
            result = super().loop_read(1)
        return result


class MqttLink:
    """Connects, keeps connecting, and tells listeners (on the event loop) when it is up."""

    def __init__(
        self,
        config: MqttConfig,
        loop: asyncio.AbstractEventLoop,
        will: tuple[str, bytes] | None = None,
    ) -> None:
        self.config = config
        self._loop = loop
        self.connected = False
        self.session_present = False
        # Bumped on paho's thread before any message of the new connection is handled.
        self.connection_id = 0
        self._connect_listeners: list[ConnectListener] = []
        self._disconnect_listeners: list[Callable[[], None]] = []
        self._last_problem: str | None = None
        self._stopping = False
        self.client = BufferedClient(
            CallbackAPIVersion.VERSION2,
            client_id=config.client_id,
            protocol=MQTTProtocolVersion.MQTTv5,
            manual_ack=True,
            reconnect_on_failure=True,
        )
        self.client.enable_logger(logging.getLogger("farm_agent.paho"))
        self.client.reconnect_delay_set(RECONNECT_MIN_S, RECONNECT_MAX_S)
        self.client.connect_timeout = CONNECT_TIMEOUT_S
        if config.username is not None:
            self.client.username_pw_set(config.username, config.password)
        if config.tls is not None:
            self.client.tls_set(
                ca_certs=config.tls.ca_file,
                certfile=config.tls.cert_file,
                keyfile=config.tls.key_file,
                cert_reqs=ssl.CERT_REQUIRED,
            )
        if will is not None:
            self.client.will_set(will[0], will[1], qos=1, retain=True)
        self.client.on_connect = self._on_connect
        self.client.on_connect_fail = self._on_connect_fail
        self.client.on_disconnect = self._on_disconnect

    def add_connect_listener(self, listener: ConnectListener) -> None:
        """`listener(session_present)` runs on the event loop after every successful connect."""
        self._connect_listeners.append(listener)

    def add_disconnect_listener(self, listener: Callable[[], None]) -> None:
        self._disconnect_listeners.append(listener)

    def start(self) -> None:
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        # Without an expiry, MQTT 5 ends the session at disconnect and the broker
        # would drop the readings published while the agent is away.
        properties.SessionExpiryInterval = self.config.session_expiry_s
        properties.ReceiveMaximum = self.config.receive_maximum
        self.client.connect_async(
            self.config.host,
            self.config.port,
            keepalive=self.config.keepalive_s,
            clean_start=False,
            properties=properties,
        )
        self.client.loop_start()

    def publish(
        self, topic: str, payload: bytes | str, *, qos: int = 1, retain: bool = False
    ) -> None:
        """Queue a message; paho sends it now or after the next reconnect."""
        self.client.publish(topic, payload, qos=qos, retain=retain)

    async def stop(self, before_disconnect: Callable[[], None] | None = None) -> None:
        """Disconnect cleanly (the session stays on the broker) and stop the network thread."""
        if before_disconnect is not None and self.connected:
            before_disconnect()
        self._stopping = True
        self.client.disconnect()
        await self._loop.run_in_executor(None, self.client.loop_stop)
        self.connected = False

    # paho thread -----------------------------------------------------------------

    def _on_connect(
        self,
        client: paho.Client,
        userdata: Any,
        flags: paho.ConnectFlags,
        reason_code: Any,
        properties: Properties | None,
    ) -> None:
        if reason_code.is_failure:
            self._report_problem(f"broker refused the connection: {reason_code}")
            return
        self.connection_id += 1
        self._loop.call_soon_threadsafe(self._connected, flags.session_present)

    def _on_connect_fail(self, client: paho.Client, userdata: Any) -> None:
        self._report_problem("broker unreachable")

    def _on_disconnect(
        self,
        client: paho.Client,
        userdata: Any,
        flags: paho.DisconnectFlags,
        reason_code: Any,
        properties: Properties | None,
    ) -> None:
        self._loop.call_soon_threadsafe(self._disconnected, str(reason_code))

    def _report_problem(self, problem: str) -> None:
        # Once per distinct problem, so a broker that stays down does not flood the log.
        if problem != self._last_problem:
            self._last_problem = problem
            _LOGGER.error(
                "MQTT %s:%s: %s; retrying every %s-%s s",
                self.config.host,
                self.config.port,
                problem,
                RECONNECT_MIN_S,
                RECONNECT_MAX_S,
            )

    # event loop ------------------------------------------------------------------

    def _connected(self, session_present: bool) -> None:
        self.connected = True
        self.session_present = session_present
        if self._last_problem is not None:
            _LOGGER.info("MQTT %s:%s: connected again", self.config.host, self.config.port)
        else:
            _LOGGER.info("MQTT %s:%s: connected", self.config.host, self.config.port)
        self._last_problem = None
        for listener in self._connect_listeners:
            listener(session_present)

    def _disconnected(self, reason: str) -> None:
        was_connected = self.connected
        self.connected = False
        if was_connected and not self._stopping:
            _LOGGER.warning(
                "MQTT %s:%s: disconnected (%s)", self.config.host, self.config.port, reason
            )
        for listener in self._disconnect_listeners:
            listener()


def subscribe_all(client: paho.Client, topics: tuple[str, ...], qos: int) -> MQTTErrorCode:
    """Subscribe every configured filter in one SUBSCRIBE packet.

    Retained messages come only with a new subscription (MQTT 5 retain handling 1):
    devices publish their state retained, and the session keeps the subscription
    across restarts and reconnects, so each retained reading is relayed once, not
    again at every reconnect.
    """
    options = SubscribeOptions(
        qos=qos,
        retainHandling=SubscribeOptions.RETAIN_SEND_IF_NEW_SUB,
    )
    result, _ = client.subscribe([(topic, options) for topic in topics])
    return result
