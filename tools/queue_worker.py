"""A stand-in for the farm's backend worker: takes readings off the queue and archives them.

Without a consumer the queue only grows and the agent reports `queue depth > 100`
after a few seconds. Archiving (not deleting) is what gives the agent's task
probe its processing time and task success (docs/agent-health.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading

import asyncpg


class QueueWorker:
    """Reads the queue every `period_s`, archives what it read, on a thread of its own."""

    def __init__(
        self, dsn: str, queue: str = "sensor_readings", period_s: float = 1.0, batch: int = 1000
    ) -> None:
        self.dsn = dsn
        self.queue = queue
        self.period_s = period_s
        self.batch = batch
        self.archived = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="queue-worker", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        asyncio.run(self._work())

    async def _work(self) -> None:
        connection: asyncpg.Connection | None = None
        try:
            while not self._stop.is_set():
                try:
                    connection = connection or await asyncpg.connect(self.dsn)
                    await self._archive_once(connection)
                except (OSError, asyncpg.PostgresError):
                    # The agent creates the queue; until then, and during outages, wait.
                    if connection is not None:
                        with contextlib.suppress(Exception):
                            await connection.close()
                    connection = None
                await asyncio.to_thread(self._stop.wait, self.period_s)
        finally:
            if connection is not None:
                await connection.close()

    async def _archive_once(self, connection: asyncpg.Connection) -> None:
        rows = await connection.fetch(
            "SELECT msg_id FROM pgmq.read($1, 30, $2)", self.queue, self.batch
        )
        if rows:
            ids = [row["msg_id"] for row in rows]
            await connection.execute("SELECT pgmq.archive($1, $2::bigint[])", self.queue, ids)
            self.archived += len(ids)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(10)
