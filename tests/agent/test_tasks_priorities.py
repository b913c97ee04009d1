"""Priorities: high before normal before low, no starvation of low tasks, depths by priority."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import asyncpg
import pytest

from farm_agent.config import TasksConfig
from farm_agent.config_file import parse_config
from farm_agent.tasks import read_task_depths, read_task_figures, submit_many, task_request
from farm_agent.tasks import sql as task_sql
from tests.agent.support import running_worker, runs_of, task_type, tasks_section
from tests.support.queues import queue_rows
from tests.support.waiting import wait_until
from tools.services import Postgres

ConfigMaker = Callable[..., dict[str, Any]]


pytestmark = pytest.mark.usefixtures("runs_table")


async def test_high_tasks_run_before_normal_ones_and_normal_before_low(
    make_config: ConfigMaker, postgres: Postgres, test_id: str
) -> None:
    kinds = {priority: task_type(test_id, priority) for priority in ("high", "normal", "low")}
    config = parse_config(
        make_config(
            tasks=tasks_section(
                test_id, dict.fromkeys(kinds.values(), "succeed"), concurrency=1, max_wait_s=600
            )
        )
    )
    # Submitted lowest priority first: the order they run in is the worker's doing.
    requests = [
        task_request(kinds[priority], n, priority)
        for priority in ("low", "normal", "high")
        for n in range(3)
    ]
    await submit_many(postgres.dsn, requests, queue=config.tasks.queue)

    async with running_worker(config):
        runs = await wait_until(
            lambda: _at_least(runs_of(postgres.dsn, *kinds.values()), 9), "nine tasks run"
        )

    assert [run["type"] for run in runs] == [
        *[kinds["high"]] * 3,
        *[kinds["normal"]] * 3,
        *[kinds["low"]] * 3,
    ]


async def test_low_task_starts_within_max_wait_while_high_tasks_keep_the_worker_busy(
    make_config: ConfigMaker, postgres: Postgres, test_id: str
) -> None:
    high, low = task_type(test_id, "high"), task_type(test_id, "low")
    max_wait_s = 4
    config = parse_config(
        make_config(
            tasks=tasks_section(
                test_id, {high: "slow", low: "succeed"}, concurrency=2, max_wait_s=max_wait_s
            )
        )
    )
    queue = config.tasks.queue
    # About 10 s of high tasks for two slots: strict priority would keep the low one
    # waiting until all of them are done.
    flood = [task_request(high, {"seconds": 0.05}, "high") for _ in range(400)]
    await submit_many(postgres.dsn, flood, queue=queue)

    async with running_worker(config):
        await wait_until(lambda: runs_of(postgres.dsn, high), "the high tasks started")
        await submit_many(postgres.dsn, [task_request(low, None, "low")], queue=queue)
        [low_run] = await wait_until(lambda: runs_of(postgres.dsn, low), "the low task ran")
        high_waiting = len(await queue_rows(postgres.dsn, f"{queue}_high"))

    [archived] = await wait_until(
        lambda: queue_rows(postgres.dsn, f"{queue}_low", "a"), "the low task archived"
    )
    waited_s = (low_run["at"] - archived["enqueued_at"]).total_seconds()
    assert waited_s < max_wait_s
    assert high_waiting > 0, "the low task should run while high tasks still wait"


async def test_depth_of_each_priority_is_readable_and_unknowns_are_null(
    make_config: ConfigMaker, postgres: Postgres, test_id: str
) -> None:
    kind = task_type(test_id, "count")
    config = parse_config(make_config(tasks=tasks_section(test_id, {kind: "succeed"})))
    requests = [
        *(task_request(kind, n, "high") for n in range(2)),
        *(task_request(kind, n, "normal") for n in range(3)),
        task_request(kind, 0, "low"),
    ]
    await submit_many(postgres.dsn, requests, queue=config.tasks.queue)

    connection = await asyncpg.connect(postgres.dsn)
    try:
        depths = await read_task_depths(connection, config.tasks)
        figures = await read_task_figures(connection, config.tasks)
    finally:
        await connection.close()

    assert depths == {"high": 2, "normal": 3, "low": 1}
    assert figures.depth == depths
    # No worker has run with this config: its dead-letter queue does not exist yet.
    assert figures.dlq_depth is None
    assert kind not in figures.by_type


# Pages the fair read of one task may touch beyond a bare pgmq.read of it (the empty
# queues' reads, the statement around them); a scan of the 6,000 rows of a queue, live
# or dead, touches over a hundred more.
EXTRA_PAGES = 40
BACKLOG = 6000


async def test_reading_a_queue_drained_from_its_head_does_not_scan_its_dead_rows(
    make_config: ConfigMaker, postgres: Postgres, test_id: str
) -> None:
    """A backlog drained from its head leaves dead rows there until a vacuum; a read
    must not walk through them all, each time."""
    config = parse_config(make_config(tasks=tasks_section(test_id, {})))
    tasks = config.tasks
    queues = tasks.priority_queues
    read = task_sql.read_statement(queues)
    arguments = [item for queue in queues for item in (queue, None)]
    connection = await asyncpg.connect(postgres.dsn)
    try:
        await task_sql.set_up_tasks(connection, config)
        await _backlog(connection, tasks, task_type(test_id, "backlog"))
        # As autovacuum would after a large submit: every row visible, says the statistics.
        await connection.execute(f"ANALYZE pgmq.q_{tasks.queue_for('normal')}")
        for _ in range(40):
            await _archive(connection, tasks, await connection.fetch(read, 30, 100, *arguments))
        bare = await _bare_read_pages(connection, tasks)
        plan = await connection.fetchval(
            f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {read}", 30, 1, *arguments
        )
    finally:
        await connection.close()

    assert _pages(plan) - bare < EXTRA_PAGES, (_pages(plan), bare)


async def test_a_read_prepared_while_the_queues_were_empty_stays_cheap_after_a_burst(
    make_config: ConfigMaker, postgres: Postgres, test_id: str
) -> None:
    """asyncpg keeps the worker's statements prepared (direct route), and PostgreSQL may
    keep one plan for them after five runs: one made for empty queues must not scan a
    whole queue once a burst arrives, until autovacuum analyzes it."""
    config = parse_config(make_config(tasks=tasks_section(test_id, {})))
    tasks = config.tasks
    queues = tasks.priority_queues
    arguments = ", ".join(f"'{queue}', NULL" for queue in queues)
    execute = f"EXECUTE idle_read(30, 100, {arguments})"
    connection = await asyncpg.connect(postgres.dsn)
    try:
        await task_sql.set_up_tasks(connection, config)
        for queue in queues:
            await connection.execute(f"VACUUM ANALYZE pgmq.q_{queue}")
        await connection.execute(
            "PREPARE idle_read(int, int, text, int, text, int, text, int) AS "
            + task_sql.read_statement(queues)
        )
        for _ in range(10):
            await connection.execute(execute)
        await _backlog(connection, tasks, task_type(test_id, "burst"))
        for _ in range(5):
            await _archive(connection, tasks, await connection.fetch(execute))
        bare = await _bare_read_pages(connection, tasks)
        plan = await connection.fetchval(
            f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) EXECUTE idle_read(30, 1, {arguments})"
        )
    finally:
        await connection.close()

    assert _pages(plan) - bare < EXTRA_PAGES, (_pages(plan), bare)


async def _backlog(connection: asyncpg.Connection, tasks: TasksConfig, kind: str) -> None:
    for start in range(0, BACKLOG, 1000):
        requests = [task_request(kind, n) for n in range(start, start + 1000)]
        await submit_many(connection, requests, queue=tasks.queue)


async def _archive(
    connection: asyncpg.Connection, tasks: TasksConfig, rows: list[asyncpg.Record]
) -> None:
    await connection.fetch(
        "SELECT pgmq.archive($1::text, $2::bigint[])",
        tasks.queue_for("normal"),
        [row["msg_id"] for row in rows],
    )


async def _bare_read_pages(connection: asyncpg.Connection, tasks: TasksConfig) -> int:
    """What a bare pgmq.read of one task from the normal queue touches, as things are."""
    plan: str = await connection.fetchval(
        "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) SELECT * FROM pgmq.read($1::text, 30, 1)",
        tasks.queue_for("normal"),
    )
    return _pages(plan)


def _pages(plan: str) -> int:
    """Shared buffers the statement touched, pgmq.read's own queries included."""
    top = json.loads(plan)[0]["Plan"]
    return int(top["Shared Hit Blocks"] + top["Shared Read Blocks"])


async def _at_least(found: Any, count: int) -> list[Any]:
    rows: list[Any] = await found
    return rows if len(rows) >= count else []
