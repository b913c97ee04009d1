"""A TCP proxy that makes a fast loopback behave like a bad farm uplink.

The kernel here has no `netem`, so latency and loss are injected in user space: every
chunk is delayed by `latency_s` in each direction, and a `loss` fraction of chunks is
held back a further retransmission timeout, which is what a lost segment costs a TCP
connection. Order within a direction is kept, as TCP keeps it.

`bandwidth_bps` limits each direction to that many bytes a second, shared by every
connection through the proxy, like one cellular or satellite uplink. With a limit,
bytes not yet delivered when their sender closes the connection are dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
from dataclasses import dataclass, field

RETRANSMISSION_TIMEOUT_S = 0.4


@dataclass
class Faults:
    latency_s: float = 0.0
    loss: float = 0.0
    bandwidth_bps: float | None = None
    rng: random.Random = field(default_factory=lambda: random.Random(5))

    def delay(self) -> float:
        extra = RETRANSMISSION_TIMEOUT_S if self.rng.random() < self.loss else 0.0
        return self.latency_s + extra


class FaultyProxy:
    """Listens on a free loopback port and forwards to `upstream_port` with the current faults."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.faults = Faults()
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="faulty-proxy", daemon=True)
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        # When each direction of the shared link is free again (loop time).
        self._link_free_at = {"up": 0.0, "down": 0.0}

    def start(self) -> FaultyProxy:
        self._thread.start()
        assert self._ready.wait(5)
        return self

    @property
    def dsn_host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def impair(self, latency_s: float, loss: float) -> None:
        self.faults.latency_s, self.faults.loss = latency_s, loss

    def heal(self) -> None:
        self.impair(0.0, 0.0)
        self.faults.bandwidth_bps = None

    def limit_bandwidth(self, bytes_per_s: float) -> None:
        self.faults.bandwidth_bps = bytes_per_s

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(
            asyncio.start_server(self._accept, "127.0.0.1", 0)
        )
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            writer.close()
            return
        for source, target, direction in ((reader, up_writer, "up"), (up_reader, writer, "down")):
            task = asyncio.create_task(self._pipe(source, target, direction))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pipe(
        self, source: asyncio.StreamReader, target: asyncio.StreamWriter, direction: str
    ) -> None:
        """Read as fast as the sender sends; deliver each chunk at its due time, in order."""
        loop = asyncio.get_running_loop()
        in_flight: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()
        deliverer = asyncio.create_task(self._deliver(in_flight, target, direction))
        self._tasks.add(deliverer)
        deliverer.add_done_callback(self._tasks.discard)
        due = 0.0
        try:
            while chunk := await source.read(65536):
                due = max(due, loop.time() + self.faults.delay())
                in_flight.put_nowait((due, chunk))
        except (ConnectionError, OSError):
            pass
        if self.faults.bandwidth_bps is not None:
            deliverer.cancel()  # the sender is gone: what the link has not carried is lost
        in_flight.put_nowait((due, b""))
        with contextlib.suppress(asyncio.CancelledError):
            await deliverer

    async def _deliver(
        self,
        in_flight: asyncio.Queue[tuple[float, bytes]],
        target: asyncio.StreamWriter,
        direction: str,
    ) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                due, chunk = await in_flight.get()
                if due > loop.time():
                    await asyncio.sleep(due - loop.time())
                if not chunk:
                    break
                await self._carry(len(chunk), direction)
                target.write(chunk)
                await target.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            with contextlib.suppress(Exception):
                target.close()

    async def _carry(self, size: int, direction: str) -> None:
        """Wait as long as the shared link takes to carry `size` bytes in this direction."""
        bandwidth = self.faults.bandwidth_bps
        if bandwidth is None:
            return
        loop = asyncio.get_running_loop()
        start = max(loop.time(), self._link_free_at[direction])
        self._link_free_at[direction] = start + size / bandwidth
        await asyncio.sleep(self._link_free_at[direction] - loop.time())

    def close(self) -> None:
        async def shutdown() -> None:
            if self._server is not None:
                self._server.close()
            tasks = list(self._tasks)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()
