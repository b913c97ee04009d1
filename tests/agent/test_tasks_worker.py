"""The task worker on real PostgreSQL+PGMQ: retries, dead letters, timeouts, leases."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

import asyncpg
import pytest

from farm_agent.config import AgentConfig
from farm_agent.config_file import parse_config
from farm_agent.tasks import TaskHealth, read_task_figures, submit
from tests.agent.support import running_worker, runs_of, task_type, tasks_section
from tests.agent.task_handlers import PLAIN_RUNS
from tests.support.agent import TEST_SECRET
from tests.support.queues import queue_messages, queue_rows, send
from tests.support.waiting import wait_until
from tools.services import PgBouncer, Postgres

ConfigMaker = Callable[..., dict[str, Any]]


pytestmark = pytest.mark.usefixtures("runs_table")


async def test_failing_task_is_retried_with_backoff_then_dead_lettered_with_its_error(
    make_config: ConfigMaker, postgres: Postgres, test_id: str
) -> None:
    broken = task_type(test_id, "broken")
    config = parse_config(
        make_config(
            tasks=tasks_section(
                test_id, {broken: "fail"}, max_attempts=3, backoff={"base_s": 1, "max_s": 2}
            )
        )
    )
    queue = config.tasks.queue
    # The handler's error names a DSN with a password: the dead letter must not show it.
    detail = f"postgresql://farm:{TEST_SECRET}@db.example/farm"
    task_id = await submit(postgres.dsn, broken, {"detail": detail}, "high", queue=queue)

    async with running_worker(config):
        letters = await wait_until(
            lambda: queue_messages(postgres.dsn, config.tasks.dead_letter_queue), "a dead letter"
        )

    [letter] = letters
    assert letter["id"] == task_id
    assert letter["type"] == broken
    assert letter["priority"] == "high"
    assert letter["payload"] == {"detail": detail}
    assert letter["attempts"] == 3
    assert letter["error"].startswith("RuntimeError: sensor offline on attempt 3")
    assert TEST_SECRET not in letter["error"]
    assert "Traceback" not in letter["error"]
    assert datetime.fromisoformat(letter["failed_at"]) >= datetime.fromisoformat(
        letter["submitted_at"]
    )
    assert letter["queue"] == f"{queue}_high"
    runs = await runs_of(postgres.dsn, broken)
    assert [run["attempt"] for run in runs] == [1, 2, 3]
    # Retry n waits min(max_s, base_s * 2^(n-1)): 1 s, then 2 s.
    gaps = [(b["at"] - a["at"]).total_seconds() for a, b in itertools.pairwise(runs)]
    assert gaps[0] >= 0.9
    assert gaps[1] >= 1.9
    assert await queue_rows(postgres.dsn, f"{queue}_high") == []


async def test_permanent_error_is_dead_lettered_at_once_without_a_retry(
    make_config: ConfigMaker, postgres: Postgres, test_id: str
) -> None:
    doomed = task_type(test_id, "doomed")
    config = parse_config(make_config(tasks=tasks_section(test_id, {doomed: "permanent"})))
    task_id = await submit(postgres.dsn, doomed, {"valve": 7}, queue=config.tasks.queue)

    async with running_worker(config):
        [letter] = await wait_until(
            lambda: queue_messages(postgres.dsn, config.tasks.dead_letter_queue), "a dead letter"
        )

    assert letter["id"] == task_id
    assert letter["attempts"] == 1
    assert letter["error"] == "PermanentError: valve 7 does not exist"
    assert letter["payload"] == {"valve": 7}
    assert len(await runs_of(postgres.dsn, doomed)) == 1


async def test_task_of_a_type_without_handler_is_dead_lettered_naming_the_type(
    make_config: ConfigMaker, postgres: Postgres, test_id: str
) -> None:
    config = parse_config(make_config(tasks=tasks_section(test_id, {})))
    orphan = task_type(test_id, "orphan")
    task_id = await submit(postgres.dsn, orphan, [1, 2], "low", queue=config.tasks.queue)

    async with running_worker(config):
        [letter] = await wait_until(
            lambda: queue_messages(postgres.dsn, config.tasks.dead_letter_queue), "a dead letter"
        )
        figures = await _figures(postgres, config)

    assert letter["id"] == task_id
    assert letter["error"] == f"no handler for task type '{orphan}' (tasks.handlers)"
    assert letter["attempts"] == 1
    assert letter["payload"] == [1, 2]
    assert await queue_rows(postgres.dsn, f"{config.tasks.queue}_low") == []
    counted = figures.by_type[orphan]
    assert (counted.dead_lettered, counted.failed, counted.retried) == (1, 0, 0)


async def test_message_that_is_not_a_task_is_dead_lettered_with_the_reason(
    make_config: ConfigMaker, postgres: Postgres, test_id: str
) -> None:
    config = parse_config(make_config(tasks=tasks_section(test_id, {})))
    queue = f"{config.tasks.queue}_normal"
    await send(
        postgres.dsn,
        queue,
        {"hello": "farm"},
        "just text",
        {"v": 2, "id": "x", "type": "a", "payload": 1, "submitted_at": "2026-01-01T00:00:00Z"},
        {"v": 1, "id": "x", "type": "Bad Type", "payload": 1, "submitted_at": "2026-01-01"},
    )

    async with running_worker(config):
        letters = await wait_until(
            lambda: _at_least(queue_messages(postgres.dsn, config.tasks.dead_letter_queue), 4),
            "four dead letters",
        )

    by_message = {json_key(letter["message"]): letter for letter in letters}
    assert by_message[json_key({"hello": "farm"})]["error"] == (
        "not a task envelope: v is None, this worker reads 1"
    )
    assert by_message[json_key("just text")]["error"] == (
        "not a task envelope: the message is not a JSON object"
    )
    assert "v is 2" in letters[2]["error"]
    assert letters[3]["error"].startswith("not a task envelope: type: must be 1-64 characters")
    assert all(letter["queue"] == queue and letter["attempts"] == 1 for letter in letters)
    assert await queue_rows(postgres.dsn, queue) == []


async def test_slow_task_keeps_its_lease_so_no_second_worker_runs_it(
    make_config: ConfigMaker, postgres: Postgres, test_id: str
) -> None:
    slow = task_type(test_id, "slow")
    config = parse_config(
        make_config(
            tasks=tasks_section(
                test_id, {slow: "slow"}, visibility_timeout_s=2, timeouts={slow: 20}
            )
        )
    )
    await submit(postgres.dsn, slow, {"seconds": 5}, queue=config.tasks.queue)

    async with running_worker(config, "first"), running_worker(config, "second"):
        runs = await wait_until(
            lambda: _events(postgres, slow, "finished"), "the slow task finished", timeout=20
        )

    all_runs = await runs_of(postgres.dsn, slow)
    assert [run["event"] for run in all_runs] == ["started", "finished"]
    assert runs[0]["attempt"] == 1
    [archived] = await queue_rows(postgres.dsn, f"{config.tasks.queue}_normal", "a")
    assert archived["read_ct"] == 1


async def test_plain_handler_runs_on_a_thread_and_one_past_its_timeout_is_retried(
    make_config: ConfigMaker, postgres: Postgres, test_id: str
) -> None:
    sleepy = task_type(test_id, "sleepy")
    # A lease far longer than the retry's 1 s backoff: on a loaded machine a retry's
    # commit that came after a 3 s lease expired let the reader see the task again while
    # still held (skipped, but counted as an attempt), and the retry ran as attempt 3.
    section = tasks_section(
        test_id, {sleepy: "plain_sleepy"}, timeouts={sleepy: 0.5}, visibility_timeout_s=10
    )
    config = parse_config(make_config(tasks=section))
    task_id = await submit(postgres.dsn, sleepy, {"seconds": 10}, queue=config.tasks.queue)

    async with running_worker(config) as worker:
        await wait_until(
            lambda: queue_rows(postgres.dsn, f"{config.tasks.queue}_normal", "a"),
            "the task archived",
        )
        figures = await _figures(postgres, config)
        # The first attempt's thread is still sleeping: it holds a slot until it returns.
        assert worker.running == 1

    runs = [run for run in PLAIN_RUNS if run[0] == task_id]
    assert [attempt for _, attempt, _ in runs] == [1, 2]
    assert all(thread.startswith("task-") for _, _, thread in runs)
    counted = figures.by_type[sleepy]
    assert (counted.succeeded, counted.retried, counted.dead_lettered) == (1, 1, 0)


async def test_async_handler_past_its_timeout_is_cancelled_and_retried(
    make_config: ConfigMaker, postgres: Postgres, test_id: str
) -> None:
    sleepy = task_type(test_id, "sleepy")
    config = parse_config(
        make_config(
            tasks=tasks_section(
                test_id, {sleepy: "async_sleepy"}, timeouts={sleepy: 0.5}, max_attempts=1
            )
        )
    )
    await submit(postgres.dsn, sleepy, {"seconds": 30}, queue=config.tasks.queue)

    async with running_worker(config):
        [letter] = await wait_until(
            lambda: queue_messages(postgres.dsn, config.tasks.dead_letter_queue), "a dead letter"
        )

    assert letter["error"].startswith("TaskTimeoutError: ran longer than 0.5 s")
    # Cancelled at the timeout: it never got to its end.
    assert [run["event"] for run in await runs_of(postgres.dsn, sleepy)] == ["started"]


async def test_a_handler_s_own_timeout_error_is_a_failure_not_the_task_timeout(
    make_config: ConfigMaker, postgres: Postgres, test_id: str
) -> None:
    impatient = task_type(test_id, "impatient")
    config = parse_config(
        make_config(
            tasks=tasks_section(
                test_id,
                {impatient: "times_out_on_its_own"},
                timeouts={impatient: 30},
                max_attempts=1,
            )
        )
    )
    await submit(postgres.dsn, impatient, {}, queue=config.tasks.queue)

    async with running_worker(config):
        [letter] = await wait_until(
            lambda: queue_messages(postgres.dsn, config.tasks.dead_letter_queue), "a dead letter"
        )

    # The handler's own error, not "ran longer than 30 s": its timeout never came.
    assert letter["error"] == "TimeoutError"
    assert letter["attempts"] == 1


async def _figures(postgres: Postgres, config: AgentConfig) -> TaskHealth:
    connection = await asyncpg.connect(postgres.dsn)
    try:
        return await read_task_figures(connection, config.tasks)
    finally:
        await connection.close()


async def _events(postgres: Postgres, task_kind: str, event: str) -> list[Any]:
    return [run for run in await runs_of(postgres.dsn, task_kind) if run["event"] == event]


async def _at_least(found: Any, count: int) -> list[Any]:
    letters: list[Any] = await found
    return letters if len(letters) >= count else []


def json_key(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


async def test_worker_moves_to_the_direct_connection_when_the_pooler_dies(
    make_config: ConfigMaker, postgres: Postgres, pgbouncer: PgBouncer, test_id: str
) -> None:
    quick = task_type(test_id, "quick")
    config = parse_config(make_config(tasks=tasks_section(test_id, {quick: "succeed"})))
    first = await submit(postgres.dsn, quick, 1, queue=config.tasks.queue)

    async with running_worker(config) as worker:
        await wait_until(lambda: runs_of(postgres.dsn, quick), "the first task run")
        assert worker.database.route == "pooler"
        pgbouncer.kill()
        second = await submit(postgres.dsn, quick, 2, queue=config.tasks.queue)
        runs = await wait_until(
            lambda: _at_least(runs_of(postgres.dsn, quick), 2), "the second task run"
        )
        assert worker.database.route == "direct"

    assert [run["task_id"] for run in runs] == [first, second]


async def test_a_task_read_again_while_its_outcome_waits_to_commit_is_settled_once(
    make_config: ConfigMaker, postgres: Postgres, test_id: str
) -> None:
    doomed = task_type(test_id, "doomed")
    config = parse_config(
        make_config(
            pooler_dsn=None,  # a transaction-mode pooler would queue the reads behind the lock
            tasks=tasks_section(test_id, {doomed: "permanent"}, visibility_timeout_s=1),
        )
    )
    queue, dead_letter_queue = config.tasks.queue, config.tasks.dead_letter_queue
    async with running_worker(config) as worker:
        first_id = await submit(postgres.dsn, doomed, None, queue=queue)
        await wait_until(lambda: queue_messages(postgres.dsn, dead_letter_queue), "a dead letter")
        blocker = await asyncpg.connect(postgres.dsn)
        try:
            # The next dead letter's commit waits behind this lock for longer than the lease:
            # the task becomes visible again meanwhile (a loaded database does the same).
            lock = blocker.transaction()
            await lock.start()
            await blocker.execute(f'LOCK TABLE pgmq."q_{dead_letter_queue}" IN EXCLUSIVE MODE')
            second_id = await submit(postgres.dsn, doomed, None, queue=queue)
            await wait_until(
                lambda: _read_count(postgres, queue, second_id, at_least=2),
                "the task read again while its dead letter waits",
            )
            await lock.rollback()
        finally:
            await blocker.close()
        await wait_until(lambda: _settled(worker, postgres, f"{queue}_normal"), "all settled")
        letters = await queue_messages(postgres.dsn, dead_letter_queue)

    assert [letter["id"] for letter in letters] == [first_id, second_id]


async def _read_count(postgres: Postgres, queue: str, task_id: str, *, at_least: int) -> bool:
    rows = await queue_rows(postgres.dsn, f"{queue}_normal")
    return any(row["message"]["id"] == task_id and row["read_ct"] >= at_least for row in rows)


async def _settled(worker: Any, postgres: Postgres, queue: str) -> bool:
    return worker.settler.held == 0 and not await queue_rows(postgres.dsn, queue)
