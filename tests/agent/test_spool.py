"""The spool on its own: order, keys, redelivery recognition, and what it remembers."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from farm_agent.spool import Arrival, Spool


def arrival(mid: int, payload: bytes, *, dup: bool = False, topic: str = "farm/f1/t") -> Arrival:
    return Arrival(topic, payload, mid, 1, dup, 1795665600.0)


def test_readings_come_back_in_order_with_keys_that_survive_a_reopen(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.db", "farm-east")
    spool.append([arrival(1, b"20.1"), arrival(2, b"20.2")])
    first = spool.peek(10)
    spool.close()

    reopened = Spool(tmp_path / "spool.db", "farm-east")
    again = reopened.peek(10)

    assert [reading.payload for reading in again] == [b"20.1", b"20.2"]
    assert [reading.key for reading in again] == [reading.key for reading in first]
    assert again[0].key == f"farm-east:{reopened.spool_id}:1"


def test_sequence_numbers_are_never_reused_after_deletes(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.db", "farm-east")
    spool.append([arrival(1, b"1"), arrival(2, b"2")])
    spool.delete([reading.seq for reading in spool.peek(10)])
    spool.append([arrival(3, b"3")])

    assert [reading.seq for reading in spool.peek(10)] == [3]
    assert spool.depth == 1


def test_a_dup_redelivery_is_recognised_even_after_a_restart(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.db", "farm-east")
    spool.append([arrival(7, b"21.5")])
    spool.close()
    reopened = Spool(tmp_path / "spool.db", "farm-east")

    stored = reopened.append([arrival(7, b"21.5", dup=True), arrival(8, b"21.5")])

    assert stored == 1, "the redelivery is skipped, the identical new reading is kept"
    assert [reading.payload for reading in reopened.peek(10)] == [b"21.5", b"21.5"]


def test_a_dup_with_other_content_or_another_packet_id_is_a_new_reading(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.db", "farm-east")
    spool.append([arrival(7, b"21.5")])

    stored = spool.append([arrival(7, b"21.6", dup=True), arrival(9, b"21.5", dup=True)])

    assert stored == 2


def test_only_the_most_recent_deliveries_are_remembered_on_disk_and_in_memory(
    tmp_path: Path,
) -> None:
    spool = Spool(tmp_path / "spool.db", "farm-east", remember=100)
    for start in range(0, 1000, 50):
        spool.append([arrival(mid, str(mid).encode()) for mid in range(start, start + 50)])
    spool.close()
    reopened = Spool(tmp_path / "spool.db", "farm-east", remember=100)

    recent = reopened.append([arrival(999, b"999", dup=True)])
    forgotten = reopened.append([arrival(10, b"10", dup=True)])

    assert recent == 0, "a redelivery of a recent packet is still recognised"
    assert forgotten == 1, "a packet far out of the broker's window is a new reading"
    with sqlite3.connect(tmp_path / "spool.db") as db:
        assert db.execute("SELECT count(*) FROM delivered").fetchone()[0] <= 101


def test_without_a_broker_session_nothing_is_recognised_any_more(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.db", "farm-east")
    spool.append([arrival(7, b"21.5")])

    spool.forget_deliveries()

    assert spool.append([arrival(7, b"21.5", dup=True)]) == 1
