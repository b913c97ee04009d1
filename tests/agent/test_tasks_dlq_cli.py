"""`farm-agent queue dlq ... --queue tasks`: the tasks' dead letters listed, requeued, purged."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from farm_agent.commands.queue import QueueRequest, run_queue_command
from farm_agent.config import AgentConfig
from farm_agent.config_file import parse_config
from farm_agent.tasks import requeue_dead_letters
from farm_agent.tasks import sql as task_sql
from tests.agent.support import task_type, tasks_section
from tests.support.agent import farm_agent, write_config
from tests.support.queues import queue_messages, queue_rows, send
from tools.services import Postgres

ConfigMaker = Callable[..., dict[str, Any]]


def dead_letter(kind: str, n: int, priority: str = "normal") -> dict[str, Any]:
    """A task dead letter as the worker writes it (docs/contracts.md, "Task dead letter")."""
    return {
        "v": 1,
        "id": str(uuid.uuid4()),
        "type": kind,
        "priority": priority,
        "payload": {"zone": n},
        "submitted_at": "2026-12-01T04:00:00.123Z",
        "error": f"RuntimeError: valve {n} did not answer",
        "attempts": 5,
        "failed_at": "2026-12-01T04:03:00.000Z",
        "queue": f"farm_tasks_{priority}",
    }


@pytest.fixture
async def tasks_ready(make_config: ConfigMaker, postgres: Postgres, test_id: str) -> AgentConfig:
    """This test's config, its task queues made as a worker makes them."""
    config = parse_config(make_config(tasks=tasks_section(test_id, {})))
    connection = await asyncpg.connect(postgres.dsn)
    try:
        await task_sql.set_up_tasks(connection, config)
    finally:
        await connection.close()
    return config


@pytest.fixture
async def connection(postgres: Postgres) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(postgres.dsn)
    yield connection
    await connection.close()


async def test_dlq_lists_requeues_and_purges_the_tasks_dead_letters_by_type_in_batches(
    make_config: ConfigMaker,
    postgres: Postgres,
    tasks_ready: AgentConfig,
    tmp_path: Path,
    test_id: str,
) -> None:
    tasks = tasks_ready.tasks
    path = write_config(tmp_path / "agent.yaml", make_config(tasks=tasks_section(test_id, {})))
    irrigate, report = task_type(test_id, "irrigate"), task_type(test_id, "report")
    letters = [
        *(dead_letter(irrigate, n, "high") for n in range(3)),
        *(dead_letter(irrigate, n, "low") for n in range(3, 5)),
        *(dead_letter(report, n) for n in range(2)),
    ]
    not_a_task = {"message": {"no": "task"}, "error": "not a task envelope: no type"}
    await send(postgres.dsn, tasks.dead_letter_queue, *letters, not_a_task)

    listed = await farm_agent(
        "queue", "dlq", "list", "--config", str(path), "--queue", "tasks", "--type", irrigate,
        "--json",
    )  # fmt: skip
    shown = await farm_agent(
        "queue", "dlq", "list", "--config", str(path), "--queue", tasks.dead_letter_queue
    )
    requeued = await farm_agent(
        "queue", "dlq", "requeue", "--config", str(path), "--queue", tasks.queue,
        "--type", irrigate, "--batch-size", "2",
    )  # fmt: skip
    purged = await farm_agent(
        "queue", "dlq", "purge", "--config", str(path), "--queue", "tasks", "--type", report,
        "--yes", "--json",
    )  # fmt: skip

    assert listed.returncode == 0, listed.stderr
    found = json.loads(listed.stdout)
    assert [entry["message"]["id"] for entry in found] == [letter["id"] for letter in letters[:5]]
    assert {entry["type"] for entry in found} == {irrigate}
    assert found[0]["error"] == "RuntimeError: valve 0 did not answer"
    assert found[0]["attempts"] == 5
    assert shown.returncode == 0, shown.stderr
    assert "valve 1 did not answer" in shown.stdout
    assert "(invalid)" in shown.stdout
    assert requeued.returncode == 0, requeued.stderr
    assert requeued.stderr.splitlines() == [
        f"requeued {moved} of 5 dead letters" for moved in (2, 4, 5)
    ]
    assert requeued.stdout.strip() == (
        f"requeued 5 task dead letters to {tasks.queue_for('high')} (3), "
        f"{tasks.queue_for('low')} (2)"
    )
    back = {
        priority: await queue_rows(postgres.dsn, tasks.queue_for(priority))
        for priority in ("high", "normal", "low")
    }
    assert [row["message"]["id"] for row in back["high"] + back["low"]] == [
        letter["id"] for letter in letters[:5]
    ]
    assert back["normal"] == []
    for row in back["high"] + back["low"]:
        assert row["read_ct"] == 0, "attempts start afresh"
        assert row["message"]["requeued"] == 1
        assert not {"error", "attempts", "failed_at", "queue"} & set(row["message"])
    assert purged.returncode == 0, purged.stderr
    assert json.loads(purged.stdout) == {
        "purged": 2,
        "queue": tasks.dead_letter_queue,
        "type": report,
    }
    assert await queue_messages(postgres.dsn, tasks.dead_letter_queue) == [not_a_task]


async def test_dlq_purge_with_limit_deletes_the_oldest_n_of_the_type_only(
    make_config: ConfigMaker,
    postgres: Postgres,
    tasks_ready: AgentConfig,
    tmp_path: Path,
    test_id: str,
) -> None:
    tasks = tasks_ready.tasks
    path = write_config(tmp_path / "agent.yaml", make_config(tasks=tasks_section(test_id, {})))
    irrigate, report = task_type(test_id, "irrigate"), task_type(test_id, "report")
    letters = [
        dead_letter(irrigate, 0),
        dead_letter(report, 1),
        *(dead_letter(irrigate, n) for n in range(2, 5)),
    ]
    await send(postgres.dsn, tasks.dead_letter_queue, *letters)

    purged = await farm_agent(
        "queue", "dlq", "purge", "--config", str(path), "--queue", "tasks", "--type", irrigate,
        "--limit", "3", "--yes", "--json",
    )  # fmt: skip

    assert purged.returncode == 0, purged.stderr
    assert json.loads(purged.stdout) == {
        "purged": 3,
        "queue": tasks.dead_letter_queue,
        "type": irrigate,
    }
    left = await queue_messages(postgres.dsn, tasks.dead_letter_queue)
    assert [letter["id"] for letter in left] == [letters[1]["id"], letters[4]["id"]]


def test_dlq_refuses_an_unknown_queue_or_a_type_where_there_is_none_naming_the_value(
    tasks_ready: AgentConfig, capsys: pytest.CaptureFixture[str]
) -> None:
    relay_dlq, tasks_dlq = (
        tasks_ready.backend.dead_letter_queue,
        tasks_ready.tasks.dead_letter_queue,
    )

    unknown = run_queue_command(tasks_ready, QueueRequest("dlq list", queue="farm_taks"))
    unknown_err = capsys.readouterr().err
    typed_relay = run_queue_command(tasks_ready, QueueRequest("dlq purge", task_type="report"))
    typed_relay_err = capsys.readouterr().err
    bad_type = run_queue_command(
        tasks_ready, QueueRequest("dlq requeue", queue="tasks", task_type="Report!")
    )
    bad_type_err = capsys.readouterr().err

    assert (unknown, typed_relay, bad_type) == (2, 2, 2)
    assert "--queue 'farm_taks'" in unknown_err
    assert relay_dlq in unknown_err
    assert tasks_dlq in unknown_err
    assert "--type works on the tasks' dead letters: add --queue tasks" in typed_relay_err
    assert "--type 'Report!'" in bad_type_err


async def test_requeue_leaves_a_task_dead_lettered_again_meanwhile_for_the_next_requeue(
    tasks_ready: AgentConfig, connection: asyncpg.Connection, postgres: Postgres, test_id: str
) -> None:
    """A worker that dead-letters a requeued task at once cannot keep a requeue going."""
    tasks = tasks_ready.tasks
    kind = task_type(test_id, "doomed")
    await send(postgres.dsn, tasks.dead_letter_queue, *(dead_letter(kind, n) for n in range(3)))
    again = DeadLetteringAgain(connection, tasks.dead_letter_queue, dead_letter(kind, 99))

    requeued = await asyncio.wait_for(
        requeue_dead_letters(again, tasks, batch_size=1),
        timeout=10,  # type: ignore[arg-type]
    )

    assert requeued.total == 3
    left = await queue_messages(postgres.dsn, tasks.dead_letter_queue)
    assert len(left) == 3, "the ones dead-lettered again wait for the next requeue"
    assert {letter["payload"]["zone"] for letter in left} == {99}


class DeadLetteringAgain:
    """A real connection on which, before each batch is picked, a task is dead-lettered again.

    As a worker does when it runs a requeued task that fails for good at once; inside the
    requeue's own transaction, so the pick surely sees it.
    """

    def __init__(self, connection: asyncpg.Connection, queue: str, letter: dict[str, Any]):
        self._connection = connection
        self._queue = queue
        self._letter = json.dumps(letter)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._connection, name)

    async def fetch(self, query: str, *args: Any) -> list[asyncpg.Record]:
        if "FOR UPDATE SKIP LOCKED" in query:
            await self._connection.execute(
                "SELECT pgmq.send($1::text, $2::jsonb)", self._queue, self._letter
            )
        return await self._connection.fetch(query, *args)
