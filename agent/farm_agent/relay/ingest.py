"""Ingest: MQTT messages in, committed to the spool, then acknowledged to the broker.

The PUBACK for a message goes out only after the spool transaction holding it has
committed. When the spool is full, messages wait unacknowledged (the broker holds
the rest) until the forwarder makes room: nothing is dropped.

While acks flow, at most `mqtt.receive_maximum` messages are held unacknowledged:
beyond that the MQTT thread stops reading its socket until commits make room. The
broker should never send more than that, but Mosquitto 2.0 does (tens of thousands
in a burst), and every such message would cost memory and widen the window of
redeliveries the spool must recognise after a crash. With the spool full no ack
goes out, the broker keeps to the limit on its own, and the socket is read as
usual, so keepalives are answered and the connection stays up however long that lasts.

A full disk is the same backpressure: no ack until an append succeeds again, tried
every DISK_RETRY_S seconds and whenever the forwarder frees room.

A payload larger than `mqtt.max_payload_bytes` is dead-lettered with only its first
`max_payload_bytes` kept: it is cut here, on arrival, so the whole of it is never
spooled nor read back (the spool records the size it arrived with).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from farm_agent.faults import failpoint
from farm_agent.mqtt import Message, MqttLink, undecodable_topic
from farm_agent.relay.metrics import RelayMetrics
from farm_agent.relay.spool import Arrival, AsyncSpool, SpoolDiskFullError
from farm_agent.topics import not_reading_prefixes

_LOGGER = logging.getLogger(__name__)

DISK_RETRY_S = 1.0


class Ingest:
    """Moves messages from the MQTT link into the spool, acking each once it is on disk."""

    def __init__(
        self,
        link: MqttLink,
        spool: AsyncSpool,
        metrics: RelayMetrics,
        on_blocked_change: Callable[[], None] | None = None,
    ) -> None:
        self._link = link
        self._spool = spool
        self._metrics = metrics
        self._loop = asyncio.get_running_loop()
        self._lock = threading.Lock()
        self._inbox: list[tuple[int, Arrival]] = []
        self._wake_scheduled = False
        self._wake = asyncio.Event()
        self._held: list[tuple[int, Arrival]] = []
        # Received and not yet acknowledged (or recognised as a redelivery); under _lock.
        self._backlog = 0
        self._max_backlog = link.config.receive_maximum
        self._accepting = True
        self._warned_no_session = False
        self.backpressure = False
        self.disk_full = False
        # Told when `backpressure` or `disk_full` changes (the relay's listeners).
        self._on_blocked_change = on_blocked_change
        config = link.config
        self._max_payload = config.max_payload_bytes
        self._not_readings = not_reading_prefixes(config.topic_prefix, config.discovery_prefix)
        link.subscribe_readings(config.topics, config.qos, self._on_message)
        link.add_connect_listener(self._on_connected)

    # paho thread -------------------------------------------------------------------

    def _on_message(self, client: Any, userdata: Any, message: Message) -> None:
        try:
            topic = message.topic
        except UnicodeDecodeError:
            topic = undecodable_topic(message)
        if topic.startswith(self._not_readings):
            # The agents' own status, health and discovery: never readings, not relayed.
            self._link.ack(message.mid, message.qos)
            return
        payload = message.payload
        if len(payload) > self._max_payload:
            # Only this much goes into the dead letter: keep no more, on disk or in memory.
            arrival = Arrival(
                topic,
                payload[: self._max_payload],
                message.mid,
                message.qos,
                bool(message.dup),
                time.time(),
                len(payload),
            )
        else:
            arrival = Arrival(
                topic, payload, message.mid, message.qos, bool(message.dup), time.time()
            )
        with self._lock:
            # A PUBACK only makes sense on the connection that received the message.
            self._inbox.append((self._link.connection_id, arrival))
            self._backlog += 1
            if self._backlog >= self._max_backlog and not self.backpressure:
                self._link.pause_reading()
            if self._wake_scheduled:
                return
            self._wake_scheduled = True
        self._loop.call_soon_threadsafe(self._wake.set)

    # event loop --------------------------------------------------------------------

    def _on_connected(self, session_present: bool) -> None:
        if not session_present:
            if not self._warned_no_session:
                self._warned_no_session = True
                _LOGGER.warning(
                    "MQTT broker kept no session for client id %s: readings published while "
                    "the agent was away were not queued for it (first start, or the broker "
                    "lost its state)",
                    self._link.config.client_id,
                )
            # Nothing will be redelivered: forget the packet ids kept to recognise redeliveries.
            self._loop.create_task(self._forget_deliveries())

    async def _forget_deliveries(self) -> None:
        try:
            await self._spool.forget_deliveries()
        except SpoolDiskFullError:
            # Harmless: a packet id remembered too long only ever matches a redelivery.
            _LOGGER.debug("spool disk full: packet ids of the last session kept")

    def _take_inbox(self) -> list[tuple[int, Arrival]]:
        with self._lock:
            taken, self._inbox = self._inbox, []
            self._wake_scheduled = False
        return taken

    async def run(self) -> None:
        """Commit and ack until stopped; returns once intake is closed and flushed."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            self._held.extend(self._take_inbox())
            while self._held:
                if not await self._commit_held():
                    await self._wait_for_room()
            if not self._accepting:
                return

    async def _commit_held(self) -> bool:
        room = self._spool.room
        if room == 0:
            return False
        batch = self._held[:room]
        try:
            stored = await self._spool.append([arrival for _, arrival in batch])
        except SpoolDiskFullError:
            await self._wait_for_disk_space()
            return True
        self._held = self._held[len(batch) :]
        if self.disk_full:
            self._disk_space_back()
        failpoint("after_spool_commit")
        self._metrics.spooled(stored, len(batch) - stored, self._spool.depth)
        self._ack(batch)
        with self._lock:
            self._backlog -= len(batch)
            if self._backlog < self._max_backlog:
                self._link.resume_reading()
        return True

    async def _wait_for_room(self) -> None:
        if not self.backpressure:
            self._block()
            _LOGGER.warning(
                "spool full (%d readings): no longer acking MQTT, the broker holds the rest",
                self._spool.max_messages,
            )
        await self._spool.room_available()
        self._unblock()
        _LOGGER.info("spool has room again: acking MQTT")

    async def _wait_for_disk_space(self) -> None:
        """The disk is full: stop acking (the broker holds the rest) and wait a little."""
        if not self.disk_full:
            self.disk_full = True
            self._block()
            _LOGGER.error(
                "spool disk full (%s): no longer acking MQTT, the broker holds the rest; "
                "retrying every %g s",
                self._spool.spool.path.parent,
                DISK_RETRY_S,
            )
        await self._spool.room_freed(DISK_RETRY_S)

    def _disk_space_back(self) -> None:
        self.disk_full = False
        self._unblock()
        _LOGGER.info("spool disk has room again: acking MQTT")

    def _block(self) -> None:
        """No acks go out: the broker keeps to receive_maximum, so read the socket as usual."""
        with self._lock:
            self.backpressure = True
            self._link.resume_reading()
        self._blocked_changed()

    def _unblock(self) -> None:
        self.backpressure = False
        self._blocked_changed()

    def _blocked_changed(self) -> None:
        self._metrics.spool_blocked(self.backpressure and not self.disk_full, self.disk_full)
        if self._on_blocked_change is not None:
            self._on_blocked_change()

    def _ack(self, batch: list[tuple[int, Arrival]]) -> None:
        current = self._link.connection_id
        # A message from an earlier connection is redelivered (DUP) by the broker and
        # recognised by the spool; acking the old packet id would be wrong. QoS 0
        # messages have nothing to ack, and QoS 2 is refused by the config.
        self._link.ack_all(
            [arrival.mid for connection, arrival in batch if connection == current and arrival.qos]
        )

    async def close_intake(self) -> None:
        """Stop taking messages, commit and ack those already received, and return."""
        self._accepting = False
        self._link.stop_readings()
        self._wake.set()
