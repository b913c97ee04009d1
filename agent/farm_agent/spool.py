"""The spool: readings on local disk (SQLite, WAL) between the broker's ack and the queue's commit.

A reading is committed here before its PUBACK goes to the broker, and deleted only
after the database committed it. Each committed QoS 1 packet id is remembered with
a digest of its topic and payload, so a broker redelivery (DUP flag, same packet id,
same content) after a crash is recognised and not stored a second time, while two
identical readings sent as two packets stay two.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import logging
import secrets
import sqlite3
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from farm_agent.envelope import SpooledReading

_LOGGER = logging.getLogger(__name__)
_T = TypeVar("_T")

SCHEMA_VERSION = "1"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS spool_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
-- AUTOINCREMENT: a sequence number is never reused, so it can be part of the idempotency key.
CREATE TABLE IF NOT EXISTS readings (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    received_at REAL NOT NULL
);
-- The last committed messages per MQTT packet id, to recognise broker redeliveries;
-- `n` counts deliveries, so only the most recent ones are kept.
CREATE TABLE IF NOT EXISTS delivered (
    mid INTEGER PRIMARY KEY,
    digest BLOB NOT NULL,
    n INTEGER NOT NULL
);
"""
# A redelivery that must be recognised was committed and not yet acked: ingest keeps
# at most mqtt.receive_maximum messages unacked, so older deliveries cannot come back.
DEFAULT_REMEMBER = 2000
# Rows per INSERT statement, largest first. One multi-row statement is one step of
# SQLite, where executemany() takes a step (and drops and retakes the GIL, which
# the MQTT thread is waiting for) per row. Powers of two keep the number of
# distinct statements, each compiled once and cached, small.
_ROWS_PER_INSERT = tuple(2**power for power in range(8, -1, -1))


class SpoolError(RuntimeError):
    """The spool file cannot be used; the agent must not start on top of it."""


@dataclass(frozen=True, slots=True)
class Arrival:
    """An MQTT message as received, before it is on disk."""

    topic: str
    payload: bytes
    mid: int
    qos: int
    dup: bool
    received_at: float


def packet_digest(topic: str, payload: bytes) -> bytes:
    digest = hashlib.blake2b(digest_size=16)
    digest.update(topic.encode("utf-8", "surrogatepass"))
    digest.update(b"\x00")
    digest.update(payload)
    return digest.digest()


class Spool:
    """Durable FIFO of readings. Not thread-safe: `AsyncSpool` runs it on one thread."""

    def __init__(self, path: Path, agent_id: str, remember: int = DEFAULT_REMEMBER) -> None:
        self.path = path
        self._agent_id = agent_id
        self._remember = remember
        self._db = self._open(path)
        self.spool_id = self._meta_value("spool_id")
        rows = self._db.execute(
            "SELECT mid, digest, n FROM delivered ORDER BY n DESC LIMIT ?", (remember,)
        ).fetchall()
        # Oldest first: the order in which entries are forgotten.
        self._delivered: OrderedDict[int, bytes] = OrderedDict(
            (mid, digest) for mid, digest, _ in reversed(rows)
        )
        self._deliveries: int = rows[0][2] if rows else 0
        self.depth: int = int(self._db.execute("SELECT count(*) FROM readings").fetchone()[0])

    @staticmethod
    def _open(path: Path) -> sqlite3.Connection:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            # FULL: a commit is on disk before the broker is told so, even on power loss.
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.execute("PRAGMA busy_timeout=5000")
            check = db.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise SpoolError(f"spool file {path} is corrupt ({check}); move it aside to start")
            db.executescript(_SCHEMA)
            db.execute(
                "INSERT OR IGNORE INTO spool_meta VALUES ('spool_id', ?), ('schema', ?)",
                (secrets.token_hex(6), SCHEMA_VERSION),
            )
        except sqlite3.DatabaseError as err:
            raise SpoolError(
                f"spool file {path} cannot be used ({err}); fix or move it aside, "
                "the readings it may hold are not deleted"
            ) from err
        except OSError as err:
            raise SpoolError(f"spool folder {path.parent} is not usable ({err.strerror})") from err
        return db

    def _meta_value(self, name: str) -> str:
        return str(
            self._db.execute("SELECT value FROM spool_meta WHERE name=?", (name,)).fetchone()[0]
        )

    def append(self, arrivals: Sequence[Arrival]) -> int:
        """Commit new readings in one transaction (one fsync); returns how many were stored.

        A DUP packet whose id and content match the last one committed (or one earlier
        in this batch) is a broker redelivery: it is skipped, and still to be acked.
        """
        fresh: list[tuple[str, bytes, float]] = []
        tracked: dict[int, bytes] = {}
        for arrival in arrivals:
            if arrival.qos == 0:
                fresh.append((arrival.topic, arrival.payload, arrival.received_at))
                continue
            digest = packet_digest(arrival.topic, arrival.payload)
            known = tracked.get(arrival.mid, self._delivered.get(arrival.mid))
            if arrival.dup and known == digest:
                continue
            tracked[arrival.mid] = digest
            fresh.append((arrival.topic, arrival.payload, arrival.received_at))
        if not fresh:
            return 0
        first = self._deliveries + 1
        self._deliveries += len(tracked)
        with self._transaction():
            self._insert_rows("INTO readings (topic, payload, received_at)", fresh)
            self._insert_rows(
                "OR REPLACE INTO delivered (mid, digest, n)",
                [(mid, digest, n) for n, (mid, digest) in enumerate(tracked.items(), first)],
            )
            self._db.execute(
                "DELETE FROM delivered WHERE n <= ?", (self._deliveries - self._remember,)
            )
        for mid, digest in tracked.items():
            self._delivered[mid] = digest
            self._delivered.move_to_end(mid)
        while len(self._delivered) > self._remember:
            self._delivered.popitem(last=False)
        self.depth += len(fresh)
        return len(fresh)

    def _insert_rows(self, into: str, rows: Sequence[tuple[object, ...]]) -> None:
        start = 0
        for size in _ROWS_PER_INSERT:
            while len(rows) - start >= size:
                self._db.execute(
                    _insert_statement(into, len(rows[0]), size),
                    [field for row in rows[start : start + size] for field in row],
                )
                start += size

    def forget_deliveries(self) -> None:
        """The broker kept no session: nothing will be redelivered, so nothing to recognise."""
        with self._transaction():
            self._db.execute("DELETE FROM delivered")
        self._delivered.clear()

    def peek(self, limit: int) -> list[SpooledReading]:
        """The oldest readings, in the order they were received."""
        rows = self._db.execute(
            "SELECT seq, topic, payload, received_at FROM readings ORDER BY seq LIMIT ?", (limit,)
        ).fetchall()
        prefix = f"{self._agent_id}:{self.spool_id}:"
        return [
            SpooledReading(seq, f"{prefix}{seq}", topic, bytes(payload), received_at)
            for seq, topic, payload, received_at in rows
        ]

    def delete(self, seqs: Sequence[int]) -> None:
        """Forget readings the database has committed."""
        if not seqs:
            return
        with self._transaction():
            deleted = self._db.executemany(
                "DELETE FROM readings WHERE seq BETWEEN ? AND ?", _runs(sorted(seqs))
            ).rowcount
        self.depth -= deleted

    def oldest_received_at(self) -> float | None:
        row = self._db.execute("SELECT received_at FROM readings ORDER BY seq LIMIT 1").fetchone()
        return float(row[0]) if row else None

    def close(self) -> None:
        try:
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error as err:
            _LOGGER.warning("spool checkpoint on close failed: %s", err)
        self._db.close()

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)


@functools.cache
def _insert_statement(into: str, width: int, rows: int) -> str:
    row = "(" + ",".join("?" * width) + ")"
    return f"INSERT {into} VALUES " + ",".join([row] * rows)


def _runs(seqs: Sequence[int]) -> Iterator[tuple[int, int]]:
    """Sorted sequence numbers as (first, last) runs: a forwarded batch is usually one run."""
    first = last = seqs[0]
    for seq in seqs[1:]:
        if seq != last + 1:
            yield first, last
            first = seq
        last = seq
    yield first, last


class _Transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self._db.execute("COMMIT" if exc_type is None else "ROLLBACK")


def read_depth(path: Path) -> int:
    """Readings waiting in a spool file, read without writing (the agent may be running)."""
    if not path.exists():
        return 0
    uri = f"{path.as_uri()}?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=2)) as db:
        return int(db.execute("SELECT count(*) FROM readings").fetchone()[0])


class AsyncSpool:
    """The spool for the event loop: every call runs on one dedicated thread, in order."""

    def __init__(self, spool: Spool, max_messages: int) -> None:
        self.spool = spool
        self.max_messages = max_messages
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="farm-spool")
        # Set when readings were added (wakes the forwarder) / removed (wakes a full ingest).
        self.changed = asyncio.Event()
        self.freed = asyncio.Event()

    @classmethod
    async def open(
        cls, path: Path, agent_id: str, max_messages: int, remember: int = DEFAULT_REMEMBER
    ) -> AsyncSpool:
        spool = await asyncio.get_running_loop().run_in_executor(
            None, Spool, path, agent_id, remember
        )
        return cls(spool, max_messages)

    @property
    def depth(self) -> int:
        return self.spool.depth

    @property
    def room(self) -> int:
        return max(0, self.max_messages - self.spool.depth)

    async def _run(self, call: Callable[[], _T]) -> _T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, call)

    async def append(self, arrivals: Sequence[Arrival]) -> int:
        stored = await self._run(lambda: self.spool.append(arrivals))
        if stored:
            self.changed.set()
        return stored

    async def forget_deliveries(self) -> None:
        await self._run(self.spool.forget_deliveries)

    async def peek(self, limit: int) -> list[SpooledReading]:
        return await self._run(lambda: self.spool.peek(limit))

    async def delete(self, seqs: Sequence[int]) -> None:
        await self._run(lambda: self.spool.delete(seqs))
        self.freed.set()

    async def oldest_received_at(self) -> float | None:
        return await self._run(self.spool.oldest_received_at)

    async def close(self) -> None:
        await self._run(self.spool.close)
        self._executor.shutdown(wait=True)
