"""The bare baseline relay: paho subscriber -> asyncpg `pgmq.send_batch`, nothing else.

What a hand-written script would do: no spool, no ledger, acks as soon as paho has
the message (paho's automatic QoS 1 ack), batches of the same size and linger as the
agent's, over the same route (the pooler, without a statement cache). The message
body has the agent's envelope fields, so both write rows of the same size. Run as
its own process: `python -m bench.baseline --port … --dsn … --queue … --topic …`.
Prints {"ready": true} once subscribed; runs until SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import asyncpg
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

SEND = "SELECT count(*) FROM pgmq.send_batch($1::text, $2::jsonb[])"


class BareRelay:
    """Messages from paho's thread into a list; batches out from the event loop."""

    def __init__(self, args: argparse.Namespace, loop: asyncio.AbstractEventLoop) -> None:
        self._args = args
        self._loop = loop
        self._lock = threading.Lock()
        self._inbox: list[tuple[str, bytes, float]] = []
        self._wake = asyncio.Event()
        self._subscribed = asyncio.Event()
        self._sequence = 0
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id="bench-baseline",
            protocol=MQTTProtocolVersion.MQTTv5,
        )
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message

    def _on_connect(self, client: paho.Client, *_: Any) -> None:
        client.subscribe([(self._args.topic, SubscribeOptions(qos=1))])

    def _on_subscribe(self, *_: Any) -> None:
        self._loop.call_soon_threadsafe(self._subscribed.set)

    def _on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        with self._lock:
            self._inbox.append((message.topic, message.payload, time.time()))
            # Wake the sender for a first reading (to time its linger) and a full batch.
            wake = len(self._inbox) in (1, self._args.batch_size)
        if wake:
            self._loop.call_soon_threadsafe(self._wake.set)

    def _take(self, limit: int) -> list[tuple[str, bytes, float]]:
        with self._lock:
            taken, self._inbox = self._inbox[:limit], self._inbox[limit:]
        return taken

    def _oldest(self) -> float | None:
        with self._lock:
            return self._inbox[0][2] if self._inbox else None

    def _body(self, topic: str, payload: bytes, received_at: float) -> str:
        self._sequence += 1
        try:
            value: Any = json.loads(payload)
        except ValueError:
            value = payload.decode("utf-8", "replace")
        moment = datetime.fromtimestamp(received_at, UTC)
        return json.dumps(
            {
                "v": 1,
                "key": f"baseline:{self._sequence}",
                "agent_id": "baseline",
                "topic": topic,
                "payload": value,
                "received_at": moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
            },
            separators=(",", ":"),
        )

    async def _wait(self, stop: asyncio.Event, timeout: float | None) -> None:
        waiters = {asyncio.ensure_future(self._wake.wait()), asyncio.ensure_future(stop.wait())}
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        for waiter in waiters:
            waiter.cancel()

    async def run(self, stop: asyncio.Event) -> None:
        args = self._args
        connection = await asyncpg.connect(args.dsn, statement_cache_size=0)
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        properties.ReceiveMaximum = args.receive_maximum
        self.client.connect("127.0.0.1", args.port, properties=properties)
        self.client.loop_start()
        await self._subscribed.wait()
        print(json.dumps({"ready": True}), flush=True)
        linger = args.batch_interval_ms / 1000
        while not stop.is_set():
            self._wake.clear()
            oldest = self._oldest()
            if oldest is None:
                await self._wait(stop, None)
                continue
            due = oldest + linger - time.time()
            if len(self._inbox) < args.batch_size and due > 0:
                await self._wait(stop, due)
                continue
            batch = self._take(args.batch_size)
            bodies = [self._body(*reading) for reading in batch]
            await connection.fetchval(SEND, args.queue, bodies)
        self.client.disconnect()
        self.client.loop_stop()
        await connection.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.baseline")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--queue", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--batch-size", type=int, required=True)
    parser.add_argument("--batch-interval-ms", type=int, required=True)
    parser.add_argument("--receive-maximum", type=int, required=True)
    args = parser.parse_args(argv)

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await BareRelay(args, loop).run(stop)

    asyncio.run(run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
