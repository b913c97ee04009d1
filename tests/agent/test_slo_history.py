"""The SLO history on disk: one row per minute and series, exact sums, restarts, clock steps."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from farm_agent.health.history import RETENTION_DAYS, History
from farm_agent.health.history_rows import Judgement, Outcome, RelayFigures
from farm_agent.health.slo import Events
from farm_agent.histogram import bucket_of

# 2027-01-15 08:00 UTC: a whole hour, so minute and hour arithmetic reads plainly.
BASE_S = 1_800_000_000
BASE_MINUTE = BASE_S // 60
WINDOW_DAYS = 30


@pytest.fixture
def history(tmp_path: Path) -> Iterator[History]:
    opened = History.open(tmp_path / "spool-history.db", WINDOW_DAYS)
    yield opened
    opened.close()


def round_of(ok: bool, latency_ms: float | None = None) -> Outcome:
    return Outcome(int(ok), 1, {} if latency_ms is None else {bucket_of(latency_ms / 1000): 1})


def record_round(history: History, now_s: float, **series: Outcome) -> int:
    minute = history.advance(now_s)
    history.record(minute, series, None, {})
    return minute


def window(history: History, minute: int, series: str) -> Events:
    return history.window_events(minute, WINDOW_DAYS)[series].window


def test_each_minute_is_one_row_per_series_however_many_rounds_it_holds(history: History) -> None:
    for second, ok in ((0, True), (10, False), (20, True), (30, True)):
        record_round(history, BASE_S + second, pooler=round_of(ok, 2.0 if ok else None))
    record_round(history, BASE_S + 60, pooler=round_of(True, 30.0))

    rows = history.series_minutes(BASE_MINUTE, BASE_MINUTE + 1)

    assert [(row.minute, row.series, row.outcome.good, row.outcome.total) for row in rows] == [
        (BASE_MINUTE, "pooler", 3, 4),
        (BASE_MINUTE + 1, "pooler", 1, 1),
    ]
    assert rows[0].outcome.latency == {bucket_of(0.002): 3}
    assert window(history, BASE_MINUTE + 1, "pooler") == Events(4, 5)


def test_the_burn_rate_windows_count_the_minutes_that_end_now(history: History) -> None:
    # One failed round 6 minutes ago, one 45 minutes ago, one 3 hours ago; good rounds between.
    for minutes_ago in range(240, -1, -1):
        ok = minutes_ago not in (6, 45, 180)
        record_round(history, BASE_S - minutes_ago * 60, pooler=round_of(ok))

    events = history.window_events(BASE_MINUTE, WINDOW_DAYS)["pooler"]

    assert events.windows == {
        "5m": Events(5, 5),
        "30m": Events(29, 30),
        "1h": Events(58, 60),
        "6h": Events(238, 241),
    }
    assert events.window == Events(238, 241)


def test_a_restart_keeps_the_history_and_adds_to_the_same_minute(tmp_path: Path) -> None:
    path = tmp_path / "spool-history.db"
    before = History.open(path, WINDOW_DAYS)
    record_round(before, BASE_S, pooler=round_of(True, 1.0))
    record_round(before, BASE_S + 20, pooler=round_of(False))
    before.close()

    after = History.open(path, WINDOW_DAYS)
    minute = record_round(after, BASE_S + 40, pooler=round_of(True, 1.0))

    assert minute == BASE_MINUTE
    assert window(after, minute, "pooler") == Events(2, 3)
    [row] = after.series_minutes(BASE_MINUTE, BASE_MINUTE)
    assert row.outcome == Outcome(2, 3, {bucket_of(0.001): 2})
    after.close()


def test_a_clock_stepping_back_a_little_records_into_the_latest_minute(history: History) -> None:
    record_round(history, BASE_S + 600, pooler=round_of(True))

    minute = record_round(history, BASE_S + 300, pooler=round_of(False))

    assert minute == BASE_MINUTE + 10
    assert [row.minute for row in history.series_minutes(BASE_MINUTE, BASE_MINUTE + 20)] == [
        BASE_MINUTE + 10
    ]
    assert window(history, minute, "pooler") == Events(1, 2)


def test_a_clock_that_ran_ahead_loses_what_it_recorded_ahead_and_the_sums_stay_exact(
    history: History,
) -> None:
    record_round(history, BASE_S, pooler=round_of(True))  # hour 0
    record_round(history, BASE_S + 65 * 60, pooler=round_of(True))  # hour 1
    # The clock runs ahead: these two land in hour 1 and hour 3 ...
    record_round(history, BASE_S + 110 * 60, pooler=round_of(False))
    record_round(history, BASE_S + 200 * 60, pooler=round_of(False))

    # ... and is set right, 100 minutes back.
    minute = record_round(history, BASE_S + 100 * 60, pooler=round_of(True))

    assert minute == BASE_MINUTE + 100
    assert [
        row.minute - BASE_MINUTE for row in history.series_minutes(BASE_MINUTE, minute + 500)
    ] == [
        0,
        65,
        100,
    ]
    assert window(history, minute, "pooler") == Events(3, 3)
    assert history.window_events(minute, WINDOW_DAYS)["pooler"].windows["1h"] == Events(2, 2)


def test_minutes_older_than_35_days_are_pruned(history: History) -> None:
    record_round(history, BASE_S, pooler=round_of(False))
    later_s = BASE_S + RETENTION_DAYS * 86400 + 60

    minute = record_round(history, later_s, pooler=round_of(True))

    assert [row.minute for row in history.series_minutes(0, minute)] == [minute]
    assert history.window_events(minute, 90)["pooler"].window == Events(1, 1)


def test_relay_figures_and_judgements_are_kept_per_minute(history: History) -> None:
    minute = history.advance(BASE_S)
    judged = {"error_rate": Judgement("ok", 99.5, 50.0)}
    history.record(minute, {}, RelayFigures(12, 3, 80.0), judged)
    history.record(
        minute, {}, RelayFigures(7, 5, None), {"error_rate": Judgement("at_risk", 99.4, 40.0)}
    )

    assert history.relay_minutes(minute, minute) == [(minute, RelayFigures(12, 5, 80.0))]
    assert history.judged_minutes(minute, minute) == [
        (minute, {"error_rate": Judgement("at_risk", 99.4, 40.0)})
    ]


def test_reading_a_30_day_window_costs_the_hourly_rollups_not_every_minute(
    history: History, tmp_path: Path
) -> None:
    # 30 days of rounds, one per minute (written straight into the file: 43,200 rounds).
    last = BASE_MINUTE
    with contextlib.closing(sqlite3.connect(history.path)) as db, db:
        db.executemany(
            "INSERT INTO minutes VALUES (?, 'pooler', 1, 1, '{}')",
            [(last - age,) for age in range(WINDOW_DAYS * 1440)],
        )
        db.executemany(
            "INSERT INTO hours VALUES (?, 'pooler', 60, 60)",
            [(last // 60 - age,) for age in range(WINDOW_DAYS * 24)],
        )
    steps = count_steps(history, lambda: history.window_events(last, WINDOW_DAYS))
    naive = count_steps(
        history,
        lambda: history._db.execute("SELECT sum(good), sum(total) FROM minutes").fetchall(),
    )

    assert history.window_events(last, WINDOW_DAYS)["pooler"].window.total > 40_000
    assert steps < naive / 10


def count_steps(history: History, work: object) -> int:
    """SQLite virtual machine steps (in thousands) that `work` takes."""
    steps = 0

    def tick() -> int:
        nonlocal steps
        steps += 1
        return 0

    history._db.set_progress_handler(tick, 1000)
    try:
        work()  # type: ignore[operator]
    finally:
        history._db.set_progress_handler(None, 0)
    return steps


def test_a_corrupt_history_file_is_moved_aside_and_started_afresh(tmp_path: Path) -> None:
    path = tmp_path / "spool-history.db"
    path.write_bytes(b"not a database at all" * 100)

    fresh = History.open(path, WINDOW_DAYS)
    minute = record_round(fresh, BASE_S, pooler=round_of(True))

    assert window(fresh, minute, "pooler") == Events(1, 1)
    aside = [path for path in tmp_path.glob("spool-history.db.corrupt-*") if path.name[-4] != "-"]
    assert [path.read_bytes()[:14] for path in aside] == [b"not a database"]
    fresh.close()
