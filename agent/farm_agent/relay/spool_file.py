"""The spool's SQLite file: its schema and migrations, opening it, and room on its disk.

Cold paths only (opening, migrating, a full disk); the spool's hot path is in `spool`.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import logging
import os
import secrets
import sqlite3
from pathlib import Path

_LOGGER = logging.getLogger(__name__)

SCHEMA_VERSION = "2"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS spool_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
-- AUTOINCREMENT: a sequence number is never reused, so it can be part of the idempotency key.
-- payload_size: the size the reading arrived with, when only its head was kept (oversize).
CREATE TABLE IF NOT EXISTS readings (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    received_at REAL NOT NULL,
    payload_size INTEGER
);
-- Key spaces: readings from first_seq up to the next key space's first_seq have keys
-- <agent_id>:<id>:<seq>.
CREATE TABLE IF NOT EXISTS key_spaces (first_seq INTEGER PRIMARY KEY, id TEXT NOT NULL);
-- The last committed messages per MQTT packet id, to recognise broker redeliveries;
-- `n` counts deliveries, so only the most recent ones are kept.
CREATE TABLE IF NOT EXISTS delivered (
    mid INTEGER PRIMARY KEY,
    digest BLOB NOT NULL,
    n INTEGER NOT NULL
);
"""
SQLITE_FULL = 13
# Room kept on the spool's disk for its own bookkeeping: given up when a delete finds
# the disk full, so readings the queue has committed can always leave the spool.
RESERVE_BYTES = 1024 * 1024
# Below this much free space, an I/O error while opening is the disk being full.
_NEARLY_FULL_BYTES = 64 * 1024


class SpoolError(RuntimeError):
    """The spool file cannot be used; the agent must not start on top of it."""


class SpoolDiskFullError(RuntimeError):
    """The spool's disk has no room: nothing was written; retry when space returns."""


def translated(error: sqlite3.Error) -> Exception:
    """A full disk as SpoolDiskFullError; any other SQLite error as it is."""
    if getattr(error, "sqlite_errorcode", None) == SQLITE_FULL or "disk is full" in str(error):
        return SpoolDiskFullError(f"spool disk full ({error})")
    return error


def open_spool_file(path: Path) -> sqlite3.Connection:
    """Open (or create) a spool file at this version; raises SpoolError or SpoolDiskFullError."""
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
        _migrate(db)
        _forget_finished_key_spaces(db)
    except sqlite3.DatabaseError as err:
        if isinstance(translated(err), SpoolDiskFullError) or _no_room(path.parent):
            raise SpoolDiskFullError(f"no room on the disk of {path} to open it") from err
        raise SpoolError(
            f"spool file {path} cannot be used ({err}); fix or move it aside, "
            "the readings it may hold are not deleted"
        ) from err
    except OSError as err:
        raise SpoolError(f"spool folder {path.parent} is not usable ({err.strerror})") from err
    return db


def highest_seq(db: sqlite3.Connection) -> int:
    """The highest sequence number ever given out in this file."""
    row = db.execute(
        "SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'readings'), 0),"
        " coalesce((SELECT max(seq) FROM readings), 0))"
    ).fetchone()
    return int(row[0])


def _no_room(folder: Path) -> bool:
    """Whether the disk is (all but) full: SQLite reports a failed WAL index as an I/O error."""
    try:
        stats = os.statvfs(folder)
    except OSError:
        return False
    return stats.f_bavail * stats.f_frsize < _NEARLY_FULL_BYTES


def _migrate(db: sqlite3.Connection) -> None:
    """Create the schema, or bring a spool file of an earlier version up to this one.

    Writes nothing to a file already at this version: the agent must start on a full disk.
    """
    with contextlib.suppress(sqlite3.OperationalError):  # no spool_meta yet: a new file
        row = db.execute("SELECT value FROM spool_meta WHERE name = 'schema'").fetchone()
        if row is not None and row[0] == SCHEMA_VERSION:
            return
    db.execute("BEGIN IMMEDIATE")
    try:
        existed = db.execute(
            "SELECT count(*) FROM sqlite_master WHERE name = 'readings'"
        ).fetchone()[0]
        columns = {row[1] for row in db.execute("PRAGMA table_info(readings)")}
        for statement in _SCHEMA.split(";\n"):
            if statement.strip():
                db.execute(statement)
        if existed and "payload_size" not in columns:
            db.execute("ALTER TABLE readings ADD COLUMN payload_size INTEGER")
        db.execute(
            "INSERT OR IGNORE INTO spool_meta VALUES ('spool_id', ?), ('schema', ?)",
            (secrets.token_hex(6), SCHEMA_VERSION),
        )
        has_spaces = db.execute("SELECT count(*) FROM key_spaces").fetchone()[0]
        if not has_spaces and highest_seq(db):
            # Version 1 keyed every reading <agent_id>:<spool_id>:<seq>: that is key space 1.
            db.execute(
                "INSERT INTO key_spaces SELECT 1, value FROM spool_meta WHERE name = 'spool_id'"
            )
        db.execute("UPDATE spool_meta SET value = ? WHERE name = 'schema'", (SCHEMA_VERSION,))
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise


def _forget_finished_key_spaces(db: sqlite3.Connection) -> None:
    """Drop key spaces no reading is left in, but the newest (it shows a restored file)."""
    starts = [row[0] for row in db.execute("SELECT first_seq FROM key_spaces ORDER BY first_seq")]
    finished = [
        (first,)
        for first, upper in itertools.pairwise(starts)
        if db.execute(
            "SELECT 1 FROM readings WHERE seq >= ? AND seq < ? LIMIT 1", (first, upper)
        ).fetchone()
        is None
    ]
    if finished:
        try:
            db.executemany("DELETE FROM key_spaces WHERE first_seq = ?", finished)
        except sqlite3.OperationalError as err:
            if translated(err) is err:
                raise
            # A full disk: housekeeping can wait for the next start.


class DiskReserve:
    """RESERVE_BYTES held in a file beside the spool, given up when the spool needs room."""

    def __init__(self, spool_path: Path) -> None:
        self.path = spool_path.with_name(spool_path.name + "-reserve")
        self.held = True  # until it shows otherwise

    def hold(self) -> bool:
        """Take the room (again); False when the disk has no such room."""
        try:
            with self.path.open("ab") as reserve:
                if os.fstat(reserve.fileno()).st_size < RESERVE_BYTES:
                    os.posix_fallocate(reserve.fileno(), 0, RESERVE_BYTES)
        except OSError as err:
            if err.errno != errno.ENOSPC:
                _LOGGER.warning("spool reserve %s: %s", self.path, err.strerror)
            with contextlib.suppress(OSError):
                self.path.unlink()
            self.held = False
            return False
        self.held = True
        return True

    def release(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        if self.held:
            _LOGGER.warning("spool disk full: gave up the spool's reserve of room to carry on")
        self.held = False
