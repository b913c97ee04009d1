"""Task dead letters: requeued by type to their own priority, purged, never sent twice."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import asyncpg
import pytest

from farm_agent.config import AgentConfig
from farm_agent.config_file import parse_config
from farm_agent.tasks import (
    list_dead_letters,
    purge_dead_letters,
    requeue_dead_letters,
    submit_many,
    task_request,
)
from farm_agent.tasks import sql as task_sql
from tests.agent.support import running_worker, runs_of, task_type, tasks_section
from tests.support.queues import query_rows, queue_messages, queue_rows, send
from tests.support.waiting import wait_until
from tools.services import Postgres

ConfigMaker = Callable[..., dict[str, Any]]


pytestmark = pytest.mark.usefixtures("runs_table")


@pytest.fixture
async def connection(postgres: Postgres) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(postgres.dsn)
    yield connection
    await connection.close()


async def dead_lettered(
    postgres: Postgres, config: AgentConfig, requests: list[Any], count: int
) -> None:
    """Submit tasks and run a worker until `count` of them are dead letters."""
    await submit_many(postgres.dsn, requests, queue=config.tasks.queue)
    async with running_worker(config):
        await wait_until(
            lambda: _at_least(queue_messages(postgres.dsn, config.tasks.dead_letter_queue), count),
            f"{count} dead letters",
        )


async def test_requeue_by_type_puts_each_task_back_on_its_priority_queue_to_start_afresh(
    make_config: ConfigMaker, postgres: Postgres, connection: asyncpg.Connection, test_id: str
) -> None:
    irrigate, report = task_type(test_id, "irrigate"), task_type(test_id, "report")
    failing = parse_config(
        make_config(tasks=tasks_section(test_id, {irrigate: "permanent", report: "permanent"}))
    )
    requests = [
        *(task_request(irrigate, {"zone": n}, "high") for n in range(5)),
        *(task_request(irrigate, {"zone": n}, "low") for n in range(5, 7)),
        *(task_request(report, {"day": n}) for n in range(3)),
    ]
    await dead_lettered(postgres, failing, requests, 10)
    tasks = failing.tasks
    listed = await list_dead_letters(connection, tasks, irrigate, limit=100)
    original = {letter.body["id"]: letter.body for letter in listed}

    requeued = await requeue_dead_letters(connection, tasks, irrigate, batch_size=2)

    assert requeued.by_priority == {"high": 5, "normal": 0, "low": 2}
    assert requeued.not_requeuable == 0
    left = await queue_messages(postgres.dsn, tasks.dead_letter_queue)
    assert sorted(letter["type"] for letter in left) == [report] * 3
    back = await queue_rows(postgres.dsn, tasks.queue_for("high"))
    back += await queue_rows(postgres.dsn, tasks.queue_for("low"))
    assert len(back) == 7
    for row in back:
        envelope = row["message"]
        assert row["read_ct"] == 0
        assert envelope["requeued"] == 1
        assert not {"error", "attempts", "failed_at", "queue"} & set(envelope)
        before = original[envelope["id"]]
        assert envelope["payload"] == before["payload"]
        assert envelope["submitted_at"] == before["submitted_at"]
    assert all(row["message"]["priority"] == "high" for row in back[:5])

    fixed = parse_config(
        make_config(tasks=tasks_section(test_id, {irrigate: "succeed", report: "permanent"}))
    )
    async with running_worker(fixed):
        await wait_until(
            lambda: _done(runs_of(postgres.dsn, irrigate), 7), "the requeued tasks done"
        )
    done = [run for run in await runs_of(postgres.dsn, irrigate) if run["event"] == "done"]
    assert {run["attempt"] for run in done} == {1}
    assert {run["task_id"] for run in done} == set(original)


async def test_requeue_keeps_dead_letters_that_were_never_tasks_and_honours_the_limit(
    make_config: ConfigMaker, postgres: Postgres, connection: asyncpg.Connection, test_id: str
) -> None:
    report = task_type(test_id, "report")
    config = parse_config(make_config(tasks=tasks_section(test_id, {report: "permanent"})))
    await send(postgres.dsn, config.tasks.queue_for("normal"), {"not": "a task"})
    await dead_lettered(postgres, config, [task_request(report, n) for n in range(4)], 5)

    first = await requeue_dead_letters(connection, config.tasks, limit=3)
    rest = await requeue_dead_letters(connection, config.tasks)

    assert (first.total, first.not_requeuable) == (3, 1)
    assert (rest.total, rest.not_requeuable) == (1, 1)
    [stuck] = await list_dead_letters(connection, config.tasks)
    assert stuck.type == "(invalid)"
    assert stuck.body["message"] == {"not": "a task"}


async def test_purge_by_type_deletes_only_that_type(
    make_config: ConfigMaker, postgres: Postgres, connection: asyncpg.Connection, test_id: str
) -> None:
    irrigate, report = task_type(test_id, "irrigate"), task_type(test_id, "report")
    config = parse_config(
        make_config(tasks=tasks_section(test_id, {irrigate: "permanent", report: "permanent"}))
    )
    requests = [task_request(irrigate, n) for n in range(5)] + [task_request(report, 0)]
    await dead_lettered(postgres, config, requests, 6)

    purged = await purge_dead_letters(connection, config.tasks, irrigate, batch_size=2)

    assert purged == 5
    [left] = await list_dead_letters(connection, config.tasks)
    assert left.type == report
    assert left.error == "PermanentError: valve 7 does not exist"
    assert left.attempts == 1


async def test_settling_a_batch_again_never_sends_a_dead_letter_twice_nor_counts_twice(
    make_config: ConfigMaker, postgres: Postgres, connection: asyncpg.Connection, test_id: str
) -> None:
    """A settle statement repeated (its commit's answer lost) finds nothing left to do."""
    kind = task_type(test_id, "twice")
    config = parse_config(make_config(tasks=tasks_section(test_id, {})))
    tasks = config.tasks
    await task_sql.set_up_tasks(connection, config)
    queue = tasks.queue_for("normal")
    await submit_many(connection, [task_request(kind, n) for n in range(4)], queue=tasks.queue)
    rows = await connection.fetch(task_sql.read_statement((queue,)), 30, 4, queue, None)
    ids = [row["msg_id"] for row in rows]
    doomed, done = ids[:2], ids[2:]
    bodies = [json.dumps({"v": 1, "error": "test", "n": n}) for n in range(2)]
    started = {row["msg_id"]: row for row in rows}

    for _ in range(2):
        await connection.fetchval(
            task_sql.DEAD_LETTER,
            queue,
            doomed,
            bodies,
            [kind, kind],
            [True, False],
            tasks.dead_letter_queue,
        )
        await connection.fetchval(
            task_sql.COMPLETE,
            queue,
            done,
            [kind, kind],
            [started[i]["enqueued_at"] for i in done],
            [started[i]["started_at"] for i in done],
        )

    letters = await queue_messages(postgres.dsn, tasks.dead_letter_queue)
    assert [letter["n"] for letter in letters] == [0, 1]
    assert len(await queue_rows(postgres.dsn, queue, "a")) == 2
    [counted] = await query_rows(
        postgres.dsn,
        "SELECT sum(succeeded) AS succeeded, sum(dead_lettered) AS dead_lettered,"
        " sum(failed) AS failed FROM farm_resilience.task_minutes WHERE type = $1",
        kind,
    )
    assert (counted["succeeded"], counted["dead_lettered"], counted["failed"]) == (2, 2, 1)


async def _at_least(found: Any, count: int) -> list[Any]:
    rows: list[Any] = await found
    return rows if len(rows) >= count else []


async def _done(found: Any, count: int) -> list[Any]:
    rows = [run for run in await found if run["event"] == "done"]
    return rows if len(rows) >= count else []
