"""A publisher process: a share of the 100 concurrent farm devices, each its own MQTT connection.

Started by the benchmark with `python -m bench.publish`, a few at a time. Each device
is a plain MQTT 3.1.1 client on a socket of its own publishing QoS 1 readings, with
at most `WINDOW` unacknowledged (as a device with a small buffer would). The packets
are written by hand rather than by paho: on 2 cores every microsecond the publishers
spend is taken from the relay under test, and paho spends about 40 µs per publish
(packet objects, locks, a write per packet) where this spends a few. Each reading
carries the time it was published, so its latency can be read back from the queue.

Protocol on stdout (one JSON object per line): {"ready": true} once every device is
connected; after a "go" line on stdin the readings go out, then {"first": …,
"last": …, "sent": …, "acked": …, "cpu_s": …} once the broker acknowledged every one.
"""

from __future__ import annotations

import argparse
import json
import select
import socket
import sys
import time
from collections.abc import Sequence

KINDS = ("soil/moisture", "air/temperature", "air/humidity", "water/flow")
WINDOW = 200
CHUNK = 50
TIMEOUT_S = 600.0
CONNACK = 0x20
PUBACK = 0x40


def _remaining_length(length: int) -> bytes:
    encoded = bytearray()
    while True:
        digit, length = length % 128, length // 128
        encoded.append(digit | (0x80 if length else 0))
        if not length:
            return bytes(encoded)


def _string(text: str) -> bytes:
    data = text.encode()
    return len(data).to_bytes(2, "big") + data


def _packet(first_byte: int, body: bytes) -> bytes:
    return bytes((first_byte,)) + _remaining_length(len(body)) + body


class Device:
    """One MQTT connection publishing QoS 1 readings on its own topic."""

    def __init__(self, port: int, client_id: str, topic: str) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=20)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # MQTT 3.1.1, clean session, keepalive 0 (runs are short; no pings needed).
        header = _string("MQTT") + bytes((4, 0x02)) + (0).to_bytes(2, "big")
        self.sock.sendall(_packet(0x10, header + _string(client_id)))
        self._buffer = b""
        self._topic = _string(topic)
        self._mid = 0
        self.inflight = 0
        self.acked = 0
        self.connected = False
        self.sock.setblocking(False)

    def room(self) -> int:
        return WINDOW - self.inflight

    def publish(self, payloads: list[bytes]) -> None:
        """Send readings in one write; the caller keeps within `room()`."""
        packets = []
        for payload in payloads:
            self._mid = self._mid % 65535 + 1
            body = self._topic + self._mid.to_bytes(2, "big") + payload
            packets.append(_packet(0x32, body))
        self.inflight += len(payloads)
        self.sock.setblocking(True)
        self.sock.sendall(b"".join(packets))
        self.sock.setblocking(False)

    def read(self) -> None:
        """Take CONNACK and PUBACKs from the socket."""
        try:
            data = self.sock.recv(65536)
        except BlockingIOError:
            return
        if not data:
            raise SystemExit("publisher: the broker closed a connection")
        buffer = self._buffer + data
        position = 0
        while len(buffer) - position >= 2:
            kind = buffer[position] & 0xF0
            length = buffer[position + 1]  # PUBACK and CONNACK are 2 bytes long
            end = position + 2 + length
            if end > len(buffer):
                break
            if kind == PUBACK:
                self.inflight -= 1
                self.acked += 1
            elif kind == CONNACK:
                if buffer[position + 3] != 0:
                    raise SystemExit("publisher: the broker refused a connection")
                self.connected = True
            position = end
        self._buffer = buffer[position:]

    def close(self) -> None:
        try:
            self.sock.setblocking(True)
            self.sock.sendall(b"\xe0\x00")
        except OSError:
            pass
        self.sock.close()


class Devices:
    """A process's devices and the wait for what the broker sends back."""

    def __init__(self, port: int, root: str, first: int, count: int) -> None:
        self.devices: list[Device] = []
        for number in range(first, first + count):
            topic = f"{root}/field{number // 10}/device{number}/{KINDS[number % 4]}"
            client_id = f"bench-{root.replace('/', '-')}-{number}"
            self.devices.append(Device(port, client_id, topic))
        self._by_fd = {device.sock.fileno(): device for device in self.devices}
        deadline = time.monotonic() + 20
        while not all(device.connected for device in self.devices):
            if time.monotonic() > deadline:
                raise SystemExit("publisher: broker did not accept every device")
            self.service(0.05)

    @property
    def acked(self) -> int:
        return sum(device.acked for device in self.devices)

    def service(self, timeout: float) -> None:
        readable, _, _ = select.select(list(self._by_fd), [], [], timeout)
        for fd in readable:
            self._by_fd[fd].read()

    def close(self) -> None:
        for device in self.devices:
            device.close()


def _payload(now: float, index: int) -> bytes:
    return b'{"t":%.6f,"n":%d,"value":%.1f}' % (now, index, 20 + index % 97 / 10)


def flat_out(devices: Devices, total: int) -> tuple[float, float]:
    """Every device publishes as fast as the broker acknowledges, in small bursts."""
    first = time.time()
    last = first
    sent = 0
    while sent < total:
        progressed = False
        for device in devices.devices:
            size = min(CHUNK, device.room(), total - sent)
            if size <= 0:
                continue
            last = time.time()
            device.publish([_payload(last, sent + offset) for offset in range(size)])
            sent += size
            progressed = True
        devices.service(0 if progressed else 0.01)
    return first, last


def paced(devices: Devices, total: int, rate: float) -> tuple[float, float]:
    """Publish at `rate` readings/s in total, round-robin over the devices, each on time."""
    started = first = last = time.time()
    width = len(devices.devices)
    for index in range(total):
        # select() returns early when a PUBACK arrives: wait until the reading is due.
        while (delay := started + index / rate - time.time()) > 0:
            devices.service(delay)
        device = devices.devices[index % width]
        while device.room() <= 0:
            devices.service(0.01)
        last = time.time()
        device.publish([_payload(last, index)])
        if index % width == width - 1:
            devices.service(0)
    return first, last


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.publish")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--root", required=True, help="topic root, e.g. bench/agent")
    parser.add_argument("--first", type=int, default=0, help="number of the first device")
    parser.add_argument("--devices", type=int, required=True)
    parser.add_argument("--count", type=int, required=True, help="readings from this process")
    parser.add_argument("--rate", type=float, default=0.0, help="readings/s; 0 = flat out")
    args = parser.parse_args(argv)
    devices = Devices(args.port, args.root, args.first, args.devices)
    try:
        print(json.dumps({"ready": True}), flush=True)
        if sys.stdin.readline().strip() != "go":
            return 1
        if args.rate:
            first, last = paced(devices, args.count, args.rate)
        else:
            first, last = flat_out(devices, args.count)
        deadline = time.monotonic() + TIMEOUT_S
        while devices.acked < args.count and time.monotonic() < deadline:
            devices.service(0.05)
        report = {
            "first": first,
            "last": last,
            "sent": args.count,
            "acked": devices.acked,
            "cpu_s": time.process_time(),
        }
        print(json.dumps(report), flush=True)
    finally:
        devices.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
