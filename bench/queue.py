"""What reached the queue, and when it was committed, read straight from PostgreSQL.

Commit times come from PostgreSQL itself (`track_commit_timestamp`): the moment each
row's transaction committed, so the figures do not depend on how often the
benchmark polls. Readings carry their publish time (`payload.t`), so a row's
latency is its commit time minus its publish time, both on this machine's clock.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

import asyncpg

_T = TypeVar("_T")

COMMIT_SPAN = """
SELECT extract(epoch FROM min(pg_xact_commit_timestamp(xmin)))::float8,
       extract(epoch FROM max(pg_xact_commit_timestamp(xmin)))::float8
FROM pgmq.q_{queue}
"""
LATENCIES = """
SELECT extract(epoch FROM pg_xact_commit_timestamp(xmin))::float8
       - (message->'payload'->>'t')::float8
FROM pgmq.q_{queue}
"""


class QueueDatabase:
    """Synchronous helpers over one direct connection (the benchmark's own, not the relay's)."""

    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self._loop = asyncio.new_event_loop()
        self._connection: asyncpg.Connection | None = None

    def _run(self, coroutine: Coroutine[Any, Any, _T]) -> _T:
        return self._loop.run_until_complete(coroutine)

    def _connect(self) -> asyncpg.Connection:
        if self._connection is None or self._connection.is_closed():
            self._connection = self._run(asyncpg.connect(self._dsn))
        return self._connection

    def disconnect(self) -> None:
        if self._connection is not None and not self._connection.is_closed():
            self._run(self._connection.close())
        self._connection = None

    def close(self) -> None:
        self.disconnect()
        self._loop.close()

    def execute(self, sql: str, *args: object) -> None:
        self._run(self._connect().execute(sql, *args))

    def value(self, sql: str, *args: object) -> Any:
        return self._run(self._connect().fetchval(sql, *args))

    def track_commit_timestamps(self) -> bool:
        """Ask PostgreSQL to keep commit times; True if a restart is needed to apply it."""
        if self.value("SHOW track_commit_timestamp") == "on":
            return False
        self.execute("ALTER SYSTEM SET track_commit_timestamp = on")
        return True

    def server_version(self) -> str:
        return str(self.value("SHOW server_version"))

    def create_queue(self, queue: str) -> None:
        self.execute("SELECT pgmq.create($1::text)", queue)

    def reset(self, queue: str) -> None:
        """Empty the queue and the agent's high-water marks, so every run starts the same."""
        self.execute(f"TRUNCATE pgmq.q_{queue}")
        if self.value("SELECT to_regclass('farm_resilience.relay_marks') IS NOT NULL"):
            self.execute("TRUNCATE farm_resilience.relay_marks")

    def count(self, queue: str) -> int:
        return int(self.value(f"SELECT count(*) FROM pgmq.q_{queue}"))

    def distinct_keys(self, queue: str) -> int:
        return int(self.value(f"SELECT count(DISTINCT message->>'key') FROM pgmq.q_{queue}"))

    def commit_span(self, queue: str) -> tuple[float, float]:
        """When the first and the last row in the queue were committed (epoch seconds)."""
        row = self._run(self._connect().fetchrow(COMMIT_SPAN.format(queue=queue)))
        assert row is not None
        assert row[0] is not None, f"queue {queue} is empty"
        return float(row[0]), float(row[1])

    def latencies(self, queue: str) -> list[float]:
        """Publish-to-commit latency of every row in the queue, in seconds."""
        rows = self._run(self._connect().fetch(LATENCIES.format(queue=queue)))
        return [float(row[0]) for row in rows]
