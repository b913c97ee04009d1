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

Readings that arrive within a window of the first one waiting are committed
together: one sync to disk, one wake-up of each thread and one ack packet for all
of them (see `commit_window_s`: 180 ms at the default 200 ms linger). The window
ends before the batch of its first reading is due (the linger counts from
when a reading arrived, not from its commit), so it holds no batch back; the
broker waits that much longer for its acks, which costs nothing: it keeps the
messages until then, and after a crash sends again whatever was not acked.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, NamedTuple

from farm_agent.faults import failpoint
from farm_agent.mqtt import Message, MqttLink, undecodable_topic
from farm_agent.relay.metrics import RelayMetrics
from farm_agent.relay.spool import Arrival, AsyncSpool, SpoolDiskFullError
from farm_agent.topics import not_reading_prefixes

_LOGGER = logging.getLogger(__name__)

DISK_RETRY_S = 1.0
# A sync to disk costs far more CPU than the rows it commits (on a Raspberry Pi's SD
# card or a VM's disk, a few hundred microseconds): at farm rates of tens to
# hundreds of readings a second, one per reading was most of the agent's work.
# At 100 readings a second a 50 ms window still meant 20 syncs a second, most of the
# agent's CPU per reading: the window may be most of the batch linger...
COMMIT_WINDOW_MAX_S = 0.18
# ... but leaves a tenth of it, so that the commit (a slow SD card's sync included)
# lands before the batch of its first reading is due, and goes with it: at farm rates
# one commit per batch. With 60 % (120 ms), commits and batches fell out of step (the
# readings of the window's last 80 ms went with the next batch), and the agent's CPU per
# reading at 100/s was a fifth higher.
COMMIT_WINDOW_LINGER_SHARE = 0.9
# A window ends early with this many readings: one sync among 64 readings is already
# a small share of their cost, and at thousands a second a longer window only holds
# back the readings that would fill a batch.
COMMIT_WINDOW_READINGS = 64


def commit_window_s(batch_interval_ms: int) -> float:
    """How long the first reading waiting may wait for others to share its commit."""
    return min(COMMIT_WINDOW_MAX_S, batch_interval_ms / 1000 * COMMIT_WINDOW_LINGER_SHARE)


class Ingest:
    """Moves messages from the MQTT link into the spool, acking each once it is on disk."""

    def __init__(
        self,
        link: MqttLink,
        spool: AsyncSpool,
        metrics: RelayMetrics,
        on_blocked_change: Callable[[], None] | None = None,
        commit_window_s: float = 0.0,
    ) -> None:
        self._link = link
        self._spool = spool
        self._metrics = metrics
        self._loop = asyncio.get_running_loop()
        self._lock = threading.Lock()
        # Messages received and the monotonic time each arrived, oldest first.
        self._inbox: list[_Received] = []
        self._wake_scheduled = False
        self._wake = asyncio.Event()
        self._held: list[_Received] = []
        # Received and not yet acknowledged (or recognised as a redelivery); under _lock.
        self._backlog = 0
        self._max_backlog = link.config.receive_maximum
        # The commit window, and how many readings end it early: well inside
        # receive_maximum, so the broker never stops sending while readings wait.
        self._window_s = commit_window_s
        self._window_full_at = max(1, min(COMMIT_WINDOW_READINGS, self._max_backlog // 4))
        self._window_full = asyncio.Event()
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
            self._inbox.append(_Received(self._link.connection_id, arrival, time.monotonic()))
            self._backlog += 1
            if self._backlog >= self._max_backlog and not self.backpressure:
                self._link.pause_reading()
            if self._wake_scheduled:
                if len(self._inbox) == self._window_full_at:
                    self._loop.call_soon_threadsafe(self._window_full.set)
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

    def _take_inbox(self) -> list[_Received]:
        with self._lock:
            taken, self._inbox = self._inbox, []
            self._wake_scheduled = False
        return taken

    async def run(self) -> None:
        """Commit and ack until stopped; returns once intake is closed and flushed."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            await self._commit_window()
            self._held.extend(self._take_inbox())
            while self._held:
                if not await self._commit_held():
                    await self._wait_for_room()
            if not self._accepting:
                return

    async def _commit_window(self) -> None:
        """Let the readings arriving shortly after the first one waiting share its commit."""
        with self._lock:
            if not self._inbox:
                return
            ends = self._inbox[0].arrived + self._window_s
            self._window_full.clear()
            if len(self._inbox) >= self._window_full_at:
                return
        remaining = ends - time.monotonic()
        if remaining > 0 and self._accepting:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._window_full.wait(), remaining)

    async def _commit_held(self) -> bool:
        room = self._spool.room
        if room == 0:
            return False
        batch = self._held[:room]
        try:
            stored = await self._spool.append(
                [received.arrival for received in batch], batch[0].arrived
            )
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

    def _ack(self, batch: list[_Received]) -> None:
        current = self._link.connection_id
        # A message from an earlier connection is redelivered (DUP) by the broker and
        # recognised by the spool; acking the old packet id would be wrong. QoS 0
        # messages have nothing to ack, and QoS 2 is refused by the config.
        self._link.ack_all(
            [
                received.arrival.mid
                for received in batch
                if received.connection == current and received.arrival.qos
            ]
        )

    async def close_intake(self) -> None:
        """Stop taking messages, commit and ack those already received, and return."""
        self._accepting = False
        self._link.stop_readings()
        self._window_full.set()
        self._wake.set()


class _Received(NamedTuple):
    """A message as ingest holds it until it is committed and acked."""

    # The link's connection it came on: its PUBACK only makes sense there.
    connection: int
    arrival: Arrival
    # The monotonic time it arrived: the batch linger counts from it.
    arrived: float
