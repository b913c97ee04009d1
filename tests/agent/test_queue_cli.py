"""`farm-agent queue` on a real PGMQ queue: stats, peek, dead letters listed, requeued, purged."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from farm_agent.commands.cli import build_parser
from tests.support.agent import TEST_SECRET, AgentProcess, farm_agent, write_config
from tests.support.mqtt import publisher
from tests.support.queues import (
    archive_finished,
    create_queues,
    queue_messages,
    send,
    wait_for_messages,
)
from tools.services import Mosquitto, Postgres

ConfigMaker = Callable[..., dict[str, Any]]
READING = {"v": 1, "key": "k1", "agent_id": "farm-east", "topic": "farm/barn/temp",
           "payload": {"value": 20.100000000000001, "unit": "C"},
           "received_at": "2026-11-26T04:00:00.123Z"}  # fmt: skip


async def queue_config(make_config: ConfigMaker, postgres: Postgres, tmp_path: Path) -> Path:
    config = make_config()
    backend = config["backend"]
    await create_queues(postgres.dsn, backend["queue"], backend["dead_letter_queue"])
    return write_config(tmp_path / "agent.yaml", config)


def dead_letter(n: int) -> dict[str, Any]:
    return {**READING, "key": f"k{n}", "error": f"consumer gave up on reading {n}"}


async def test_stats_show_both_queues_and_the_last_hour_of_tasks(
    make_config: ConfigMaker, postgres: Postgres, tmp_path: Path
) -> None:
    path = await queue_config(make_config, postgres, tmp_path)
    backend = make_config()["backend"]
    await send(postgres.dsn, backend["queue"], READING, READING)
    await send(postgres.dsn, backend["dead_letter_queue"], dead_letter(1))
    await archive_finished(postgres.dsn, backend["queue"], [2.0, 4.0, 6.0])

    human = await farm_agent("queue", "stats", "--config", str(path))
    result = await farm_agent("queue", "stats", "--config", str(path), "--json")

    assert human.returncode == 0, human.stderr
    assert f"queue {backend['queue']}: depth 2" in human.stdout
    assert f"dead-letter queue {backend['dead_letter_queue']}: depth 1" in human.stdout
    assert "3 archived, 1 dead-lettered, success 75.00 %" in human.stdout
    stats = json.loads(result.stdout)
    assert stats["queue"]["depth"] == 2
    assert stats["dead_letter_queue"]["depth"] == 1
    assert stats["last_hour"]["archived"] == 3
    assert stats["last_hour"]["processing_p50_s"] == 4.0
    assert stats["last_hour"]["task_success_pct"] == 75.0
    assert stats["tasks"] is None, "no task queue exists: nothing to show"
    assert "task queues" not in human.stdout


async def test_stats_show_the_task_queues_by_priority_and_their_dead_letters(
    make_config: ConfigMaker, postgres: Postgres, tmp_path: Path
) -> None:
    path = await queue_config(make_config, postgres, tmp_path)
    tasks = make_config()["tasks"]["queue"]
    await create_queues(
        postgres.dsn, *(f"{tasks}_{name}" for name in ("high", "normal", "low", "dlq"))
    )
    await send(postgres.dsn, f"{tasks}_high", READING, READING)
    await send(postgres.dsn, f"{tasks}_normal", READING)
    await send(postgres.dsn, f"{tasks}_dlq", dead_letter(1))

    human = await farm_agent("queue", "stats", "--config", str(path))
    result = await farm_agent("queue", "stats", "--config", str(path), "--json")

    assert human.returncode == 0, human.stderr
    assert (
        f"task queues {tasks}_*: high 2, normal 1, low 0; dead letters ({tasks}_dlq) 1"
        in human.stdout
    )
    shown = json.loads(result.stdout)["tasks"]
    assert shown["depth"] == {"high": 2, "normal": 1, "low": 0}
    assert shown["dlq_depth"] == 1
    assert shown["queue"] == tasks


async def test_peek_shows_the_oldest_messages_and_leaves_them_unread(
    make_config: ConfigMaker, postgres: Postgres, tmp_path: Path
) -> None:
    path = await queue_config(make_config, postgres, tmp_path)
    queue = make_config()["backend"]["queue"]
    await send(postgres.dsn, queue, *({**READING, "key": f"k{n}"} for n in range(5)))

    human = await farm_agent("queue", "peek", "--config", str(path), "--limit", "3")
    result = await farm_agent("queue", "peek", "--config", str(path), "--json", "--limit", "3")

    assert human.returncode == 0, human.stderr
    assert "farm/barn/temp" in human.stdout
    peeked = json.loads(result.stdout)
    assert [message["message"]["key"] for message in peeked] == ["k0", "k1", "k2"]
    assert all(message["read_ct"] == 0 for message in peeked)
    again = json.loads((await farm_agent("queue", "peek", "--config", str(path), "--json")).stdout)
    assert len(again) == 5
    assert all(message["read_ct"] == 0 for message in again)


async def test_dlq_list_shows_each_dead_letter_with_its_reason(
    make_config: ConfigMaker, postgres: Postgres, tmp_path: Path
) -> None:
    path = await queue_config(make_config, postgres, tmp_path)
    await send(postgres.dsn, make_config()["backend"]["dead_letter_queue"], dead_letter(7))

    human = await farm_agent("queue", "dlq", "list", "--config", str(path))
    result = await farm_agent("queue", "dlq", "list", "--config", str(path), "--json")

    assert human.returncode == 0, human.stderr
    assert "consumer gave up on reading 7" in human.stdout
    [listed] = json.loads(result.stdout)
    assert listed["message"] == dead_letter(7)


async def test_requeue_moves_a_real_dead_letter_back_with_its_envelope_and_counts_it(
    make_config: ConfigMaker,
    start_agent: Callable[..., AgentProcess],
    mosquitto: Mosquitto,
    postgres: Postgres,
    tmp_path: Path,
    test_id: str,
) -> None:
    config = make_config()
    backend = config["backend"]
    path = write_config(tmp_path / "agent.yaml", config)
    start_agent(config)
    with publisher(mosquitto.port, f"{test_id}-pub") as device:
        device.publish(f"{test_id}/barn/temp", b"\xff\xfe not text", wait=True)
    [original] = await wait_for_messages(postgres.dsn, backend["dead_letter_queue"], 1)
    assert original["error"].startswith("payload is not valid UTF-8")

    result = await farm_agent("queue", "dlq", "requeue", "--config", str(path), "--json")

    assert result.returncode == 0, result.stderr
    assert len(json.loads(result.stdout)["requeued"]) == 1
    assert await queue_messages(postgres.dsn, backend["dead_letter_queue"]) == []
    [requeued] = await queue_messages(postgres.dsn, backend["queue"])
    assert requeued == {**original, "requeued": 1}


async def test_requeue_again_counts_up_and_keeps_every_digit_of_the_payload(
    make_config: ConfigMaker, postgres: Postgres, tmp_path: Path
) -> None:
    path = await queue_config(make_config, postgres, tmp_path)
    backend = make_config()["backend"]
    # More digits than a float holds: only a byte-faithful move keeps them.
    envelope = (
        '{"v": 1, "key": "k9", "payload": {"value": 20.1000000000000000000001}, "requeued": 1}'
    )
    await send_text(postgres.dsn, backend["dead_letter_queue"], envelope)

    human = await farm_agent("queue", "dlq", "requeue", "--config", str(path))

    assert human.returncode == 0, human.stderr
    assert human.stdout.strip() == f"requeued 1 dead letter to {backend['queue']}"
    assert await stored_texts(postgres.dsn, backend["queue"]) == [
        '{"v": 1, "key": "k9", "payload": {"value": 20.1000000000000000000001}, "requeued": 2}'
    ]


async def test_requeue_by_id_or_limit_moves_only_those(
    make_config: ConfigMaker, postgres: Postgres, tmp_path: Path
) -> None:
    path = await queue_config(make_config, postgres, tmp_path)
    backend = make_config()["backend"]
    await send(postgres.dsn, backend["dead_letter_queue"], *(dead_letter(n) for n in range(4)))
    listed = json.loads(
        (await farm_agent("queue", "dlq", "list", "--config", str(path), "--json")).stdout
    )
    third = listed[2]["msg_id"]

    by_id = await farm_agent("queue", "dlq", "requeue", "--config", str(path), "--id", str(third))
    by_limit = await farm_agent("queue", "dlq", "requeue", "--config", str(path), "--limit", "2")

    assert (by_id.returncode, by_limit.returncode) == (0, 0)
    moved = [message["key"] for message in await queue_messages(postgres.dsn, backend["queue"])]
    assert moved == ["k2", "k0", "k1"]
    left = await queue_messages(postgres.dsn, backend["dead_letter_queue"])
    assert [message["key"] for message in left] == ["k3"]


async def test_requeue_of_thousands_goes_in_batches_each_its_own_transaction_with_progress(
    make_config: ConfigMaker, postgres: Postgres, tmp_path: Path
) -> None:
    path = await queue_config(make_config, postgres, tmp_path)
    backend = make_config()["backend"]
    await send_batch(
        postgres.dsn, backend["dead_letter_queue"], [dead_letter(n) for n in range(3000)]
    )

    first = await farm_agent(
        "queue", "dlq", "requeue", "--config", str(path), "--limit", "1000", "--batch-size", "300"
    )
    rest = await farm_agent(
        "queue", "dlq", "requeue", "--config", str(path), "--batch-size", "250", "--json"
    )

    assert (first.returncode, rest.returncode) == (0, 0), first.stderr + rest.stderr
    assert first.stderr.splitlines() == [
        f"requeued {moved} of 1000 dead letters" for moved in (300, 600, 900, 1000)
    ]
    assert len(rest.stderr.splitlines()) == 8
    assert rest.stderr.splitlines()[-1] == "requeued 2000 of 2000 dead letters"
    assert len(json.loads(rest.stdout)["requeued"]) == 2000
    keys = [message["key"] for message in await queue_messages(postgres.dsn, backend["queue"])]
    assert keys == [f"k{n}" for n in range(3000)], "each once, in order"
    assert await queue_messages(postgres.dsn, backend["dead_letter_queue"]) == []
    assert await transactions_that_wrote(postgres.dsn, backend["queue"]) == 4 + 8


async def test_purge_asks_first_and_deletes_only_after_yes(
    make_config: ConfigMaker, postgres: Postgres, tmp_path: Path
) -> None:
    path = await queue_config(make_config, postgres, tmp_path)
    dlq = make_config()["backend"]["dead_letter_queue"]
    await send(postgres.dsn, dlq, dead_letter(1), dead_letter(2))

    declined = await farm_agent("queue", "dlq", "purge", "--config", str(path), stdin="n\n")
    assert declined.returncode == 1
    assert f"Delete all 2 dead letters in {dlq}? [y/N]" in declined.stdout
    assert len(await queue_messages(postgres.dsn, dlq)) == 2

    confirmed = await farm_agent("queue", "dlq", "purge", "--config", str(path), stdin="y\n")
    assert confirmed.returncode == 0, confirmed.stderr
    assert f"purged 2 dead letters from {dlq}" in confirmed.stdout
    assert await queue_messages(postgres.dsn, dlq) == []

    await send(postgres.dsn, dlq, dead_letter(3))
    unasked = await farm_agent("queue", "dlq", "purge", "--config", str(path), "--yes", "--json")
    assert unasked.returncode == 0
    assert json.loads(unasked.stdout) == {"purged": 1, "queue": dlq}
    assert "[y/N]" not in unasked.stdout


async def test_purge_with_limit_deletes_only_the_oldest_n_and_says_so_first(
    make_config: ConfigMaker, postgres: Postgres, tmp_path: Path
) -> None:
    path = await queue_config(make_config, postgres, tmp_path)
    dlq = make_config()["backend"]["dead_letter_queue"]
    await send(postgres.dsn, dlq, *(dead_letter(n) for n in range(5)))

    purged = await farm_agent(
        "queue", "dlq", "purge", "--config", str(path), "--limit", "2", stdin="y\n"
    )
    refused = await farm_agent("queue", "dlq", "purge", "--config", str(path), "--limit", "0")

    assert purged.returncode == 0, purged.stderr
    assert f"Delete the oldest 2 of 5 dead letters in {dlq}? [y/N]" in purged.stdout
    assert f"purged 2 dead letters from {dlq}" in purged.stdout
    left = await queue_messages(postgres.dsn, dlq)
    assert [letter["key"] for letter in left] == ["k2", "k3", "k4"]
    assert refused.returncode == 2
    assert "--limit: must be 1 or more" in refused.stderr


@pytest.mark.parametrize(
    "command", [["peek"], ["dlq", "list"], ["dlq", "requeue"], ["dlq", "purge"]], ids=" ".join
)
@pytest.mark.parametrize("limit", ["0", "-3"])
def test_every_queue_limit_must_be_1_or_more(
    command: list[str], limit: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["queue", *command, "--config", "agent.yaml", "--limit", limit])

    assert exited.value.code == 2
    assert "--limit: must be 1 or more" in capsys.readouterr().err


async def test_queue_commands_fail_with_1_naming_the_cause_never_the_password(
    make_config: ConfigMaker, tmp_path: Path
) -> None:
    unreachable = f"postgresql://postgres:{TEST_SECRET}@127.0.0.1:1/farm"
    path = write_config(
        tmp_path / "agent.yaml", make_config(pooler_dsn=unreachable, direct_dsn=None)
    )
    missing = write_config(tmp_path / "missing.yaml", make_config(queue="never_created_queue"))

    down = await farm_agent("queue", "stats", "--config", str(path))
    absent = await farm_agent("queue", "peek", "--config", str(missing))

    assert down.returncode == 1
    assert "farm-agent: queue stats: ConnectionRefusedError" in down.stderr
    assert TEST_SECRET not in down.stdout + down.stderr
    assert absent.returncode == 1
    assert "queue never_created_queue or its dead-letter queue does not exist" in absent.stderr


async def send_text(dsn: str, queue: str, message: str) -> None:
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute("SELECT pgmq.send($1::text, $2::jsonb)", queue, message)
    finally:
        await connection.close()


async def stored_texts(dsn: str, queue: str) -> list[str]:
    """The queue's messages exactly as PostgreSQL stores them (jsonb text)."""
    connection = await asyncpg.connect(dsn)
    try:
        rows = await connection.fetch(f'SELECT message::text FROM pgmq."q_{queue}" ORDER BY msg_id')
    finally:
        await connection.close()
    return [str(row[0]) for row in rows]


async def send_batch(dsn: str, queue: str, messages: list[dict[str, Any]]) -> None:
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute(
            "SELECT pgmq.send_batch($1::text, $2::text[]::jsonb[])",
            queue,
            [json.dumps(message) for message in messages],
        )
    finally:
        await connection.close()


async def transactions_that_wrote(dsn: str, queue: str) -> int:
    """How many transactions inserted the queue's rows (PostgreSQL's xmin of each row)."""
    connection = await asyncpg.connect(dsn)
    try:
        count = await connection.fetchval(
            f'SELECT count(DISTINCT xmin::text) FROM pgmq."q_{queue}"'
        )
    finally:
        await connection.close()
    return int(count)
