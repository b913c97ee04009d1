"""paho with a read buffer, bulk acks and a quiet thread: the one place reaching into its internals.

Why: paho 2.1 reads a packet with three recv() calls or more (type, length, rest),
handles one packet per pass of its loop, and sends each PUBACK on its own after
waking its thread through a socket pair. At thousands of readings a second those
system calls, each dropping and retaking the GIL that the spool thread waits for,
cost the relay more than anything else it does. The hooks used here are paho's
internals, kept to this module: tests/agent/test_mqtt_client.py fails if a paho
release moves them.
"""

from __future__ import annotations

import contextlib
import struct
import threading
from collections.abc import Sequence
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.client import PUBACK
from paho.mqtt.enums import MQTTErrorCode

# Packet type, remaining length 2 (MQTT 5: reason code 0, success, left out), packet id.
_PUBACK = struct.Struct("!BBH")
# The longest paho's thread sleeps with nothing to do and no keepalive (0) to keep.
IDLE_WAIT_S = 3600.0
# How long paho's own thread waits at most between passes of its loop.
PAHO_WAIT_S = 1.0


class QuietClient(paho.Client):
    """paho's client, whose thread sleeps while there is nothing to do.

    paho's thread looks at its socket every second even when nothing happens: on a
    quiet farm, and on every agent and worker connection, a wake-up a second for
    nothing. This one wakes when something arrives, something is queued to send, or
    a keepalive is due.
    """

    def _loop(self, timeout: float = 1.0) -> MQTTErrorCode:
        # paho's thread passes 1 s: on a quiet link, a wake-up every second for nothing.
        # Whatever needs the loop sooner wakes it (incoming bytes, or a packet queued
        # from another thread through the socket pair); on its own it need only look
        # again when a keepalive ping is due, or the broker's answer to one is late.
        return super()._loop(self._until_keepalive_due())

    def _until_keepalive_due(self) -> float:
        """Seconds until paho must send a ping, or give up waiting for the answer to one."""
        if self._keepalive == 0:
            return IDLE_WAIT_S
        with self._msgtime_mutex:
            # When the last packet came in: paho 2.2 keeps it in _last_bytes_received
            # (and no longer sets _last_msg_in before the first packet), 2.1 in _last_msg_in.
            last_in: float | None = getattr(self, "_last_bytes_received", None)
            if last_in is None:
                last_in = getattr(self, "_last_msg_in", None)
            last_out = self._last_msg_out
        if last_in is None:
            # A paho that keeps it elsewhere: look as often as paho itself would.
            return PAHO_WAIT_S
        due = min(last_in, last_out) + self._keepalive
        if self._ping_t > 0:
            due = min(due, self._ping_t + self._keepalive)
        return min(IDLE_WAIT_S, max(0.0, due - paho.time_func()))


class BufferedClient(QuietClient):
    """paho's client, reading its socket up to 64 KiB at a time and acking in bulk.

    The read buffer belongs to one socket, so a reconnect never sees bytes of the
    connection before.
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
