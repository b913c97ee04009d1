"""The spool: readings on local disk (SQLite, WAL) between the broker's ack and the queue's commit.

A reading is committed here before its PUBACK goes to the broker, and deleted only
after the database committed it. Each committed QoS 1 packet id is remembered with
a digest of its topic and payload, so a broker redelivery (DUP flag, same packet id,
same content) after a crash is recognised and not stored a second time, while two
identical readings sent as two packets stay two.

Keys are `<agent_id>:<key space>:<seq>`. Each process opens a fresh key space (a
random id and the first sequence number it covers) with its first reading, so a
spool file restored from an older copy, whose sequence numbers rewind, can never
give a new reading a key the queue has already seen.

A full disk is backpressure, not a crash: an append that finds no room raises
`SpoolDiskFullError` (ingest stops acking and retries), and a reserve file kept beside
the spool is given up when a delete needs room, so the spool can always drain.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import functools
import hashlib
import logging
import math
import secrets
import sqlite3
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from farm_agent.relay.envelope import SpooledBatch, SpooledReading
from farm_agent.relay.spool_file import (
    DiskReserve,
    SpoolDiskFullError,
    SpoolError,
    highest_seq,
    open_spool_file,
    translated,
)

__all__ = ["Arrival", "AsyncSpool", "Spool", "SpoolDiskFullError", "SpoolError", "read_depth"]

_LOGGER = logging.getLogger(__name__)
_T = TypeVar("_T")

# A redelivery that must be recognised was committed and not yet acked: ingest keeps
# at most mqtt.receive_maximum messages unacked, so older deliveries cannot come back.
DEFAULT_REMEMBER = 2000
# Rows per INSERT statement, largest first. One multi-row statement is one step of
# SQLite, where executemany() takes a step (and drops and retakes the GIL, which
# the MQTT thread is waiting for) per row. Powers of two keep the number of
# distinct statements, each compiled once and cached, small.
_ROWS_PER_INSERT = tuple(2**power for power in range(8, -1, -1))
# The oldest readings, at most `limit` of them, of one key space (below the next one).
_PEEK = """
SELECT seq, topic, payload, received_at, coalesce(payload_size, length(payload))
FROM readings WHERE seq < ? ORDER BY seq LIMIT ?
"""
# How many bytes of topics and payloads those readings hold.
_PEEK_BYTES = """
SELECT coalesce(sum(length(payload) + length(topic)), 0) FROM (
    SELECT payload, topic FROM readings WHERE seq < ? ORDER BY seq LIMIT ?
)
"""
# The same readings, but no more bytes than asked for (the first one always).
_PEEK_UP_TO_BYTES = """
SELECT seq, topic, payload, received_at, size FROM (
    SELECT *, sum(length(payload) + length(topic)) OVER (ORDER BY seq) AS running FROM (
        SELECT seq, topic, payload, received_at, coalesce(payload_size, length(payload)) AS size
        FROM readings WHERE seq < ? ORDER BY seq LIMIT ?
    )
) WHERE running <= ? OR running = length(payload) + length(topic) ORDER BY seq
"""


@dataclass(frozen=True, slots=True)
class Arrival:
    """An MQTT message as received, before it is on disk."""

    topic: str
    payload: bytes
    mid: int
    qos: int
    dup: bool
    received_at: float
    # The size the payload arrived with, when only its first mqtt.max_payload_bytes are kept.
    size: int | None = None


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
        self._reserve = DiskReserve(path)
        try:
            self._db = open_spool_file(path)
        except SpoolDiskFullError:
            # Opening needs a little room (the WAL index): the reserve is there for this.
            self._reserve.release()
            try:
                self._db = open_spool_file(path)
            except SpoolDiskFullError as err:
                raise SpoolError(f"{err}; free some space on that disk") from err
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
        # The highest sequence number ever given out in this file, at open.
        self.highest_seq_at_open = self._highest_seq()
        spaces = self._db.execute("SELECT first_seq, id FROM key_spaces ORDER BY first_seq")
        self._space_starts: list[int] = []
        self._space_ids: list[str] = []
        for first_seq, space_id in spaces:
            self._space_starts.append(int(first_seq))
            self._space_ids.append(str(space_id))
        # This process's key space, opened with its first reading.
        self._current_space: str | None = None
        # (last seq of an append, monotonic time of it), oldest first: how long readings
        # have waited, whatever the wall clock does. Readings of an earlier run have
        # waited long enough: their time is -inf.
        self._appended: deque[tuple[int, float]] = deque()
        if self.depth:
            self._appended.append((self.highest_seq_at_open, -math.inf))
        self._reserve.hold()

    def _meta_value(self, name: str) -> str:
        return str(
            self._db.execute("SELECT value FROM spool_meta WHERE name=?", (name,)).fetchone()[0]
        )

    def _highest_seq(self) -> int:
        return highest_seq(self._db)

    @property
    def key_spaces(self) -> tuple[str, ...]:
        """The ids of every key space this file has given keys in, oldest first."""
        return tuple(self._space_ids)

    def append(self, arrivals: Sequence[Arrival], arrived: float | None = None) -> int:
        """Commit new readings in one transaction (one fsync); returns how many were stored.

        `arrived` is the monotonic time the oldest of them came in (now if not given):
        the batch linger and the relay latency count from it.
        A DUP packet whose id and content match the last one committed (or one earlier
        in this batch) is a broker redelivery: it is skipped, and still to be acked.
        Raises SpoolDiskFullError, having stored nothing, when the disk has no room.
        """
        fresh: list[tuple[str, bytes, float, int | None]] = []
        tracked: dict[int, bytes] = {}
        for arrival in arrivals:
            if arrival.qos == 0:
                fresh.append((arrival.topic, arrival.payload, arrival.received_at, arrival.size))
                continue
            digest = packet_digest(arrival.topic, arrival.payload)
            known = tracked.get(arrival.mid, self._delivered.get(arrival.mid))
            if arrival.dup and known == digest:
                continue
            tracked[arrival.mid] = digest
            fresh.append((arrival.topic, arrival.payload, arrival.received_at, arrival.size))
        if not fresh:
            return 0
        # The reserve was given up for a delete: the disk has room again only once
        # the reserve fits, and then for the readings too.
        if not self._reserve.held and not self._reserve.hold():
            raise SpoolDiskFullError(f"no room on the disk of {self.path}")
        if arrived is None:
            arrived = time.monotonic()  # before the fsync: close to when they came in
        first = self._deliveries + 1
        try:
            with self._transaction():
                opened = self._open_key_space() if self._current_space is None else None
                last_seq = self._insert_rows(
                    "INTO readings (topic, payload, received_at, payload_size)", fresh
                )
                self._insert_rows(
                    "OR REPLACE INTO delivered (mid, digest, n)",
                    [(mid, digest, n) for n, (mid, digest) in enumerate(tracked.items(), first)],
                )
                self._db.execute(
                    "DELETE FROM delivered WHERE n <= ?",
                    (first + len(tracked) - 1 - self._remember,),
                )
        except SpoolDiskFullError:
            # The next writer starts the WAL from its beginning, in space it already has.
            self._checkpoint()
            raise
        if opened is not None:
            self._current_space = opened[1]
            self._space_starts.append(opened[0])
            self._space_ids.append(opened[1])
        self._appended.append((last_seq, arrived))
        self._deliveries += len(tracked)
        for mid, digest in tracked.items():
            self._delivered[mid] = digest
            self._delivered.move_to_end(mid)
        while len(self._delivered) > self._remember:
            self._delivered.popitem(last=False)
        self.depth += len(fresh)
        return len(fresh)

    def _open_key_space(self) -> tuple[int, str]:
        """A fresh key space from the next sequence number on (inside the append's transaction)."""
        first_seq = self._highest_seq() + 1
        space_id = secrets.token_hex(6)
        self._db.execute("INSERT INTO key_spaces VALUES (?, ?)", (first_seq, space_id))
        return first_seq, space_id

    def _insert_rows(self, into: str, rows: Sequence[tuple[object, ...]]) -> int:
        """Insert rows in as few statements as possible; returns the last rowid inserted."""
        start = 0
        last = 0
        for size in _ROWS_PER_INSERT:
            while len(rows) - start >= size:
                cursor = self._db.execute(
                    _insert_statement(into, len(rows[0]), size),
                    [field for row in rows[start : start + size] for field in row],
                )
                last = cursor.lastrowid or last
                start += size
        return last

    def forget_deliveries(self) -> None:
        """The broker kept no session: nothing will be redelivered, so nothing to recognise."""
        with self._transaction():
            self._db.execute("DELETE FROM delivered")
        self._delivered.clear()

    def peek(self, limit: int, max_bytes: int) -> SpooledBatch | None:
        """The oldest readings, in the order they were received, all of one key space.

        At most `limit` readings and `max_bytes` of topics and payloads (always at least
        one reading); None when the spool is empty.
        """
        row = self._db.execute("SELECT seq FROM readings ORDER BY seq LIMIT 1").fetchone()
        if row is None:
            return None
        index = bisect.bisect_right(self._space_starts, row[0]) - 1
        if index < 0:
            raise SpoolError(f"spool file {self.path}: reading {row[0]} has no key space")
        space = self._space_ids[index]
        upper = self._space_starts[index + 1] if index + 1 < len(self._space_starts) else 2**63 - 1
        # Cutting by bytes is the exception: the cheap sum says whether it is needed.
        if self._db.execute(_PEEK_BYTES, (upper, limit)).fetchone()[0] <= max_bytes:
            rows = self._db.execute(_PEEK, (upper, limit)).fetchall()
        else:
            rows = self._db.execute(_PEEK_UP_TO_BYTES, (upper, limit, max_bytes)).fetchall()
        prefix = f"{self._agent_id}:{space}:"
        return SpooledBatch(
            space,
            [
                SpooledReading(seq, f"{prefix}{seq}", topic, payload, received_at, size)
                for seq, topic, payload, received_at, size in rows
            ],
        )

    def delete(self, seqs: Sequence[int]) -> list[tuple[int, float]]:
        """Forget readings the database has committed (the oldest ones).

        Returns how long ago they arrived, as (count, monotonic time of arrival) runs in
        sequence order; -inf for readings spooled by an earlier run. Gives up the disk
        reserve if that is what it takes; raises SpoolDiskFullError if even that is not enough.
        """
        if not seqs:
            return []
        ordered = sorted(seqs)
        runs = list(_runs(ordered))
        for attempt in range(3):
            try:
                # Not synced on its own: a delete lost with the power (never with the
                # process alone) only sends those readings again, and their key
                # space's mark skips them. The next append's sync makes it durable.
                with self._transaction(synced=False):
                    deleted = self._db.executemany(
                        "DELETE FROM readings WHERE seq BETWEEN ? AND ?", runs
                    ).rowcount
                break
            except SpoolDiskFullError:
                if attempt == 0:
                    self._checkpoint()
                elif attempt == 1:
                    self._reserve.release()
                else:
                    raise
        self.depth -= deleted
        return self._arrivals_of(ordered)

    def _arrivals_of(self, seqs: Sequence[int]) -> list[tuple[int, float]]:
        """Arrival times of the deleted readings `seqs` (sorted), forgetting those appends."""
        runs: list[tuple[int, float]] = []
        taken = 0
        appended = self._appended
        while appended and taken < len(seqs):
            end, arrived = appended[0]
            upto = bisect.bisect_right(seqs, end)
            if upto > taken:
                runs.append((upto - taken, arrived))
                taken = upto
            if end > seqs[-1]:
                break
            appended.popleft()
        if taken < len(seqs):
            runs.append((len(seqs) - taken, -math.inf))
        return runs

    def oldest_arrival(self) -> float | None:
        """The monotonic time the oldest reading arrived (-inf: before this run), or None."""
        if not self.depth or not self._appended:
            return None
        return self._appended[0][1]

    def close(self) -> None:
        try:
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error as err:
            _LOGGER.warning("spool checkpoint on close failed: %s", err)
        self._db.close()

    def _transaction(self, *, synced: bool = True) -> _Transaction:
        return _Transaction(self._db, synced=synced)

    def _checkpoint(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self._db.execute("PRAGMA wal_checkpoint(RESTART)")


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
    """BEGIN IMMEDIATE ... COMMIT, synced to disk unless `synced=False` (WAL: NORMAL).

    The file's setting is FULL (every commit synced) before and after any transaction.
    """

    def __init__(self, db: sqlite3.Connection, *, synced: bool = True) -> None:
        self._db = db
        self._synced = synced

    def __enter__(self) -> None:
        try:
            if not self._synced:
                self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as err:
            self._sync_again()
            raise translated(err) from err

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        try:
            self._end(exc_type, exc)
        finally:
            self._sync_again()

    def _sync_again(self) -> None:
        if not self._synced:
            # If even this fails the spool is unusable: the error stops the relay,
            # rather than later readings being acked without a sync.
            try:
                self._db.execute("PRAGMA synchronous=FULL")
            except sqlite3.Error as err:
                raise translated(err) from err

    def _end(self, exc_type: object, exc: object) -> None:
        if exc_type is None:
            try:
                self._db.execute("COMMIT")
            except sqlite3.Error as err:
                self._rollback()
                raise translated(err) from err
            return
        self._rollback()
        if isinstance(exc, sqlite3.Error):
            raise translated(exc) from exc

    def _rollback(self) -> None:
        # SQLite rolls back on its own after some errors (a full disk among them): a
        # second ROLLBACK would fail and hide the error that matters.
        if self._db.in_transaction:
            try:
                self._db.execute("ROLLBACK")
            except sqlite3.Error as err:
                _LOGGER.warning("spool rollback failed: %s", err)


def read_depth(path: Path) -> int:
    """Readings waiting in a spool file, read without writing (the agent may be running)."""
    if not path.exists():
        return 0
    uri = f"{path.as_uri()}?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=2)) as db:
        return int(db.execute("SELECT count(*) FROM readings").fetchone()[0])


class AsyncSpool:
    """The spool for the event loop: every call runs on one dedicated thread, in order.

    What the forwarder asks between calls (the depth, when the oldest reading came in)
    is kept here on the loop, so waiting for a batch costs no trip to that thread.
    """

    def __init__(self, spool: Spool, max_messages: int) -> None:
        self.spool = spool
        self.max_messages = max_messages
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="farm-spool")
        # Set when the spool holds `_wanted` readings (wakes the forwarder) / when
        # readings were removed (wakes a full ingest).
        self._added = asyncio.Event()
        self._wanted = 1
        self._freed = asyncio.Event()
        # The monotonic time the oldest reading came in (-inf: before this run), or None.
        self._oldest: float | None = spool.oldest_arrival()
        # True from an append that found the disk full until one that succeeds.
        self.disk_full = False

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

    @property
    def oldest_arrival(self) -> float | None:
        """The monotonic time the oldest reading came in (-inf: before this run), or None."""
        return self._oldest

    async def _run(self, call: Callable[[], _T]) -> _T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, call)

    async def append(self, arrivals: Sequence[Arrival], arrived: float | None = None) -> int:
        """Commit readings (see `Spool.append`); raises SpoolDiskFullError and sets `disk_full`."""
        if arrived is None:
            arrived = time.monotonic()
        try:
            stored = await self._run(lambda: self.spool.append(arrivals, arrived))
        except SpoolDiskFullError:
            self.disk_full = True
            raise
        self.disk_full = False
        if stored:
            if self._oldest is None:
                self._oldest = arrived
            if self.spool.depth >= self._wanted:
                self._added.set()
        return stored

    async def forget_deliveries(self) -> None:
        await self._run(self.spool.forget_deliveries)

    async def peek(self, limit: int, max_bytes: int) -> SpooledBatch | None:
        return await self._run(lambda: self.spool.peek(limit, max_bytes))

    async def delete(self, seqs: Sequence[int]) -> list[tuple[int, float]]:
        def delete() -> tuple[list[tuple[int, float]], float | None]:
            return self.spool.delete(seqs), self.spool.oldest_arrival()

        arrivals, self._oldest = await self._run(delete)
        self._freed.set()
        return arrivals

    async def readings_added(self, timeout_s: float | None, at_least: int = 1) -> None:
        """Until the spool holds `at_least` readings, `wake_readers()` is called, or the timeout.

        Appends that leave fewer wake nobody: a reader waiting for a full batch sleeps
        through the commits that do not fill it.
        """
        self._added.clear()
        self._wanted = max(1, at_least)
        if self.spool.depth >= self._wanted:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._added.wait(), timeout_s)

    def wake_readers(self) -> None:
        """End every `readings_added` wait now (a reader that is stopping)."""
        self._added.set()

    async def room_freed(self, timeout_s: float | None) -> None:
        """Until readings are deleted from now on (room made), or the timeout."""
        self._freed.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._freed.wait(), timeout_s)

    async def room_available(self) -> None:
        """Until the spool holds fewer than `max_messages` readings."""
        while self.room == 0:
            await self.room_freed(None)

    async def close(self) -> None:
        await self._run(self.spool.close)
        self._executor.shutdown(wait=True)
