"""The spool on its own: order, keys, redelivery recognition, and what it remembers."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from farm_agent.config import MAX_RECEIVE_MAXIMUM
from farm_agent.relay.envelope import SpooledReading
from farm_agent.relay.spool import DEFAULT_REMEMBER, Arrival, Spool
from tests.agent.support import write_version_1_spool

BATCH_BYTES = 1 << 20


def arrival(mid: int, payload: bytes, *, dup: bool = False, topic: str = "farm/f1/t") -> Arrival:
    return Arrival(topic, payload, mid, 1, dup, 1795665600.0)


def peek(spool: Spool, limit: int = 10) -> list[SpooledReading]:
    batch = spool.peek(limit, BATCH_BYTES)
    return batch.readings if batch is not None else []


def test_readings_come_back_in_order_with_keys_that_survive_a_reopen(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.db", "farm-east")
    spool.append([arrival(1, b"20.1"), arrival(2, b"20.2")])
    first = peek(spool)
    spool.close()

    reopened = Spool(tmp_path / "spool.db", "farm-east")
    again = peek(reopened)

    assert [reading.payload for reading in again] == [b"20.1", b"20.2"]
    assert [reading.key for reading in again] == [reading.key for reading in first]
    assert again[0].key == f"farm-east:{reopened.key_spaces[0]}:1"


def test_sequence_numbers_are_never_reused_after_deletes(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.db", "farm-east")
    spool.append([arrival(1, b"1"), arrival(2, b"2")])
    spool.delete([reading.seq for reading in peek(spool)])
    spool.append([arrival(3, b"3")])

    assert [reading.seq for reading in peek(spool)] == [3]
    assert spool.depth == 1


def test_readings_appended_after_a_delete_are_synced_to_disk_again(tmp_path: Path) -> None:
    # A delete commits without a sync of its own (a lost one only resends readings the
    # marks skip); every append, which the broker's ack waits for, must sync.
    spool = Spool(tmp_path / "spool.db", "farm-east")
    spool.append([arrival(1, b"1"), arrival(2, b"2")])
    spool.delete([peek(spool)[0].seq])
    full = 2

    assert spool._db.execute("PRAGMA synchronous").fetchone()[0] == full
    spool.append([arrival(3, b"3")])
    assert [reading.payload for reading in peek(spool)] == [b"2", b"3"]


def test_a_dup_redelivery_is_recognised_even_after_a_restart(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.db", "farm-east")
    spool.append([arrival(7, b"21.5")])
    spool.close()
    reopened = Spool(tmp_path / "spool.db", "farm-east")

    stored = reopened.append([arrival(7, b"21.5", dup=True), arrival(8, b"21.5")])

    assert stored == 1, "the redelivery is skipped, the identical new reading is kept"
    assert reopened.depth == 2


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


def test_each_run_keys_its_readings_in_a_fresh_key_space(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.db", "farm-east")
    spool.append([arrival(1, b"1")])
    spool.close()
    reopened = Spool(tmp_path / "spool.db", "farm-east")
    reopened.append([arrival(2, b"2")])

    (first,) = peek(reopened)  # a batch never spans two key spaces
    reopened.delete([first.seq])
    (second,) = peek(reopened)

    assert first.key.split(":")[1] != second.key.split(":")[1]
    assert [first.seq, second.seq] == [1, 2]


def test_a_batch_holds_no_more_bytes_than_asked_but_always_one_reading(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.db", "farm-east")
    spool.append([arrival(mid, b"x" * 1000) for mid in range(1, 11)])

    assert len(spool.peek(10, 3500).readings) == 3  # type: ignore[union-attr]
    assert len(spool.peek(10, 10).readings) == 1  # type: ignore[union-attr]


def test_redelivery_memory_stays_inside_the_packet_id_cycle_at_the_largest_receive_maximum(
    tmp_path: Path,
) -> None:
    # The agent remembers max(DEFAULT_REMEMBER, 2 x receive_maximum) deliveries. Packet ids
    # cycle through 65,535: a repeated reading (same topic and payload) whose packet id was
    # last used a whole cycle ago must be stored, even when it comes with DUP set.
    remember = max(DEFAULT_REMEMBER, 2 * MAX_RECEIVE_MAXIMUM)
    spool = Spool(tmp_path / "spool.db", "farm-east", remember=remember)
    for start in range(1, 65536, 5000):
        spool.append([arrival(mid, b"21.5") for mid in range(start, min(start + 5000, 65536))])

    assert spool.append([arrival(1, b"21.5", dup=True)]) == 1


def test_a_spool_file_of_the_previous_version_opens_with_its_readings_and_keys(
    tmp_path: Path,
) -> None:
    path = tmp_path / "spool.db"
    write_version_1_spool(path, "4eb30e20cbe0", [b"20.1", b"x" * 5000])

    spool = Spool(path, "farm-east")
    readings = peek(spool)

    assert [reading.key for reading in readings] == [
        "farm-east:4eb30e20cbe0:1",
        "farm-east:4eb30e20cbe0:2",
    ]
    assert [reading.size for reading in readings] == [4, 5000]
    spool.append([arrival(9, b"20.2")])
    spool.delete([reading.seq for reading in readings])
    assert [reading.key.split(":")[2] for reading in peek(spool)] == ["3"]
