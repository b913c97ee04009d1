"""The SLO history: what each probe saw, per minute, on local disk for 35 days.

One SQLite file (WAL) beside the spool (`slo.history_path`), written once per probe
round, in one transaction. Per minute and series (a probe as `<kind>/<name>`, or
`route/any`: whether at least one database route answered) it holds the events
counted (good and total) and a histogram of the latencies of the probes that answered
(farm_agent.histogram: within 4.9 %, 0.5 ms below 1 ms): one row per minute and series,
however often the probes run. Hourly roll-ups of the counts, kept in the same
transaction, let a 30-day window be summed from 720 rows instead of 43,200. Per minute
as well: the relay's figures (the largest queue depth, spool depth and relay p95 seen)
and each objective's last judgement, which the weekly review plots.

Rows are keyed by wall-clock minute: it is history, read by people. It never runs
backwards: when the clock steps back by up to MAX_STEP_BACK_MINUTES, rounds are
recorded into the latest minute until the clock catches up; a larger step means the
clock was wrong before, and what was recorded ahead of it is dropped and the roll-ups
rebuilt, so no sum ever counts it. Minutes older than RETENTION_DAYS are deleted as
the hours pass; hours are kept as long as the longest window needs them.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import sqlite3
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from farm_agent.health.history_rows import (
    Judgement,
    Outcome,
    RelayFigures,
    SeriesMinute,
    histogram_from,
    histogram_text,
    judgement_json,
)
from farm_agent.health.slo import WINDOW_MINUTES, Events, ObjectiveEvents

_LOGGER = logging.getLogger(__name__)

RETENTION_DAYS = 35
MAX_STEP_BACK_MINUTES = 60
_SCHEMA = """
CREATE TABLE IF NOT EXISTS minutes (
    minute INTEGER NOT NULL,
    series TEXT NOT NULL,
    good INTEGER NOT NULL,
    total INTEGER NOT NULL,
    latency TEXT NOT NULL,
    PRIMARY KEY (minute, series)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS hours (
    hour INTEGER NOT NULL,
    series TEXT NOT NULL,
    good INTEGER NOT NULL,
    total INTEGER NOT NULL,
    PRIMARY KEY (hour, series)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS relay (
    minute INTEGER PRIMARY KEY,
    queue_depth INTEGER,
    spool_depth INTEGER,
    relay_p95_ms REAL
);
CREATE TABLE IF NOT EXISTS judged (minute INTEGER PRIMARY KEY, objectives TEXT NOT NULL);
"""
_ADD_TO_HOUR = """
INSERT INTO hours (hour, series, good, total) VALUES (?, ?, ?, ?)
ON CONFLICT (hour, series) DO UPDATE SET good = good + excluded.good, total = total + excluded.total
"""
_REBUILD_HOURS_FROM = """
INSERT INTO hours (hour, series, good, total)
SELECT minute / 60, series, sum(good), sum(total) FROM minutes WHERE minute >= ? GROUP BY 1, 2
"""


class HistoryError(RuntimeError):
    """The history file cannot be opened; the agent carries on without it."""


@dataclass(slots=True)
class _Minute:
    """The minute being written: kept so a round adds to it without reading it back."""

    minute: int
    series: dict[str, Outcome]
    relay: RelayFigures | None


class History:
    """The history file. Not thread-safe: one thread uses it (the tracker's executor)."""

    def __init__(self, db: sqlite3.Connection, path: Path, hours_kept: int) -> None:
        self.path = path
        self._db = db
        self._hours_kept = hours_kept
        self._current: _Minute | None = None
        self._pruned_hour: int | None = None
        self._latest = self._latest_minute()

    @classmethod
    def open(cls, path: Path, window_days: int) -> History:
        """Open (or create) the history for writing; a corrupt file is moved aside."""
        hours_kept = 24 * max(RETENTION_DAYS, window_days + 1)
        try:
            return cls(_connect(path), path, hours_kept)
        except OSError as err:
            raise HistoryError(f"SLO history folder {path.parent} is not usable ({err})") from err
        except sqlite3.DatabaseError as err:
            if not _corrupt(err):
                raise HistoryError(f"SLO history {path} cannot be opened ({err})") from err
        aside = path.with_name(f"{path.name}.corrupt-{int(time.time())}")
        _LOGGER.warning("SLO history %s is corrupt: moved to %s, starting afresh", path, aside)
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                Path(f"{path}{suffix}").rename(f"{aside}{suffix}")
        try:
            return cls(_connect(path), path, hours_kept)
        except sqlite3.Error as err:
            raise HistoryError(f"SLO history {path} cannot be opened ({err})") from err

    @classmethod
    def open_read_only(cls, path: Path) -> History | None:
        """The history as another process left it, for reading only; None if there is none."""
        if not path.exists():
            return None
        uri = f"{path.resolve().as_uri()}?mode=ro"
        try:
            db = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
            return cls(db, path, 0)
        except sqlite3.Error as err:
            raise HistoryError(f"SLO history {path} cannot be read ({err})") from err

    def close(self) -> None:
        self._db.close()

    # Time -----------------------------------------------------------------------

    def minute_at(self, now: float) -> int:
        """The minute a round at wall time `now` belongs to (see the module's words on time)."""
        wall = math.floor(now / 60)
        latest = self._latest
        if latest is not None and 0 < latest - wall <= MAX_STEP_BACK_MINUTES:
            return latest
        return wall

    def advance(self, now: float) -> int:
        """`minute_at`, after dropping what a clock that ran ahead recorded past it."""
        minute = self.minute_at(now)
        if self._latest is not None and minute < self._latest:
            _LOGGER.warning(
                "clock stepped back %d minutes: dropping the SLO history recorded ahead of it",
                self._latest - minute,
            )
            self._forget_after(minute)
        return minute

    # Writing ----------------------------------------------------------------------

    def record(
        self,
        minute: int,
        outcomes: Mapping[str, Outcome],
        relay: RelayFigures | None,
        judged: Mapping[str, Judgement],
    ) -> None:
        """Add one round to its minute (and hour), all in one transaction; raises sqlite3.Error."""
        current = self._minute(minute)
        series = {name: current.series.get(name, Outcome()) + new for name, new in outcomes.items()}
        if relay is None or current.relay is None:
            relay_now = relay or current.relay
        else:
            relay_now = current.relay + relay
        hour = minute // 60
        try:
            with self._transaction():
                self._prune(minute)
                self._db.executemany(
                    "INSERT OR REPLACE INTO minutes VALUES (?, ?, ?, ?, ?)",
                    [
                        (minute, name, o.good, o.total, histogram_text(o))
                        for name, o in series.items()
                    ],
                )
                self._db.executemany(
                    _ADD_TO_HOUR, [(hour, name, o.good, o.total) for name, o in outcomes.items()]
                )
                if relay_now is not None:
                    self._db.execute(
                        "INSERT OR REPLACE INTO relay VALUES (?, ?, ?, ?)",
                        (
                            minute,
                            relay_now.queue_depth,
                            relay_now.spool_depth,
                            relay_now.relay_p95_ms,
                        ),
                    )
                if judged:
                    self._db.execute(
                        "INSERT OR REPLACE INTO judged VALUES (?, ?)",
                        (
                            minute,
                            json.dumps({name: judgement_json(j) for name, j in judged.items()}),
                        ),
                    )
        except sqlite3.Error:
            self._current = None  # read the minute back next time: this round is not in it
            raise
        current.series.update(series)
        current.relay = relay_now
        self._latest = max(minute, self._latest if self._latest is not None else minute)

    def _minute(self, minute: int) -> _Minute:
        if self._current is None or self._current.minute != minute:
            rows = self._db.execute(
                "SELECT series, good, total, latency FROM minutes WHERE minute = ?", (minute,)
            )
            relay = self._db.execute(
                "SELECT queue_depth, spool_depth, relay_p95_ms FROM relay WHERE minute = ?",
                (minute,),
            ).fetchone()
            self._current = _Minute(
                minute,
                {
                    series: Outcome(good, total, histogram_from(text))
                    for series, good, total, text in rows
                },
                RelayFigures(*relay) if relay is not None else None,
            )
        return self._current

    def _prune(self, minute: int) -> None:
        """Once an hour: forget minutes older than RETENTION_DAYS, hours older than needed."""
        hour = minute // 60
        if self._pruned_hour == hour:
            return
        oldest = minute - RETENTION_DAYS * 24 * 60
        for table in ("minutes", "relay", "judged"):
            self._db.execute(f"DELETE FROM {table} WHERE minute < ?", (oldest,))
        self._db.execute("DELETE FROM hours WHERE hour <= ?", (hour - self._hours_kept,))
        self._pruned_hour = hour

    def _forget_after(self, minute: int) -> None:
        with self._transaction():
            for table in ("minutes", "relay", "judged"):
                self._db.execute(f"DELETE FROM {table} WHERE minute > ?", (minute,))
            self._db.execute("DELETE FROM hours WHERE hour >= ?", (minute // 60,))
            self._db.execute(_REBUILD_HOURS_FROM, ((minute // 60) * 60,))
        self._current = None
        self._latest = self._latest_minute()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    # Reading ----------------------------------------------------------------------

    def window_events(self, minute: int, window_days: int) -> dict[str, ObjectiveEvents]:
        """Per series, the events in each burn-rate window and in the window, ending at `minute`.

        From at most 360 minute rows and window_days * 24 hour rows per series.
        """
        longest = max(WINDOW_MINUTES.values())
        recent: dict[str, dict[str, Events]] = {}
        rows = self._db.execute(
            "SELECT series, minute, good, total FROM minutes WHERE minute > ? AND minute <= ?",
            (minute - longest, minute),
        )
        for series, at, good, total in rows:
            windows = recent.setdefault(series, dict.fromkeys(WINDOW_MINUTES, Events()))
            for name, length in WINDOW_MINUTES.items():
                if at > minute - length:
                    windows[name] += Events(good, total)
        hour = minute // 60
        hours = self._db.execute(
            "SELECT series, sum(good), sum(total) FROM hours"
            " WHERE hour > ? AND hour <= ? GROUP BY series",
            (hour - window_days * 24, hour),
        )
        return {
            series: ObjectiveEvents(
                recent.get(series, dict.fromkeys(WINDOW_MINUTES, Events())), Events(good, total)
            )
            for series, good, total in hours
        }

    def series_minutes(self, first: int, last: int) -> list[SeriesMinute]:
        """Every series' minutes from `first` to `last`, inclusive, in time order."""
        rows = self._db.execute(
            "SELECT minute, series, good, total, latency FROM minutes"
            " WHERE minute >= ? AND minute <= ? ORDER BY minute, series",
            (first, last),
        )
        return [
            SeriesMinute(minute, series, Outcome(good, total, histogram_from(text)))
            for minute, series, good, total, text in rows
        ]

    def relay_minutes(self, first: int, last: int) -> list[tuple[int, RelayFigures]]:
        rows = self._db.execute(
            "SELECT minute, queue_depth, spool_depth, relay_p95_ms FROM relay"
            " WHERE minute >= ? AND minute <= ? ORDER BY minute",
            (first, last),
        )
        return [(minute, RelayFigures(depth, spool, p95)) for minute, depth, spool, p95 in rows]

    def judged_minutes(self, first: int, last: int) -> list[tuple[int, dict[str, Judgement]]]:
        rows = self._db.execute(
            "SELECT minute, objectives FROM judged"
            " WHERE minute >= ? AND minute <= ? ORDER BY minute",
            (first, last),
        )
        return [
            (minute, {name: Judgement(**values) for name, values in json.loads(text).items()})
            for minute, text in rows
        ]

    @property
    def latest_minute(self) -> int | None:
        return self._latest

    def _latest_minute(self) -> int | None:
        row = self._db.execute("SELECT max(minute) FROM minutes").fetchone()
        return None if row is None or row[0] is None else int(row[0])


def _connect(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        # History, not readings: a power cut may cost the last round, never the file.
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA busy_timeout=5000")
        _require_intact(db)
        db.executescript(_SCHEMA)
    except BaseException:
        db.close()
        raise
    return db


def _require_intact(db: sqlite3.Connection) -> None:
    check = db.execute("PRAGMA quick_check").fetchone()[0]
    if check != "ok":
        raise sqlite3.DatabaseError(f"file is corrupt: {check}")


def _corrupt(error: sqlite3.DatabaseError) -> bool:
    text = str(error)
    return "not a database" in text or "corrupt" in text or "malformed" in text
