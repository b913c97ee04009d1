"""Priorities: high before normal before low, no starvation of low tasks, depths by priority."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import asyncpg
import pytest

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


async def test_reading_a_queue_drained_from_its_head_does_not_scan_its_dead_rows(
    make_config: ConfigMaker, postgres: Postgres, test_id: str
) -> None:
    """A backlog drained from its head leaves dead rows there until a vacuum; the read's
    "anything visible?" check of each queue must not walk through them on every read."""
    kind = task_type(test_id, "backlog")
    config = parse_config(make_config(tasks=tasks_section(test_id, {kind: "succeed"})))
    tasks = config.tasks
    queues = tasks.priority_queues
    normal = tasks.queue_for("normal")
    connection = await asyncpg.connect(postgres.dsn)
    try:
        await task_sql.set_up_tasks(connection, config)
        await submit_many(
            connection, [task_request(kind, n) for n in range(3000)], queue=tasks.queue
        )
        # As autovacuum would after a large submit: every row visible, says the statistics.
        await connection.execute(f"ANALYZE pgmq.q_{normal}")
        read = task_sql.read_statement(queues)
        arguments = [item for queue in queues for item in (queue, None)]
        for _ in range(20):
            rows = await connection.fetch(read, 30, 100, *arguments)
            await connection.fetch(
                "SELECT pgmq.archive($1::text, $2::bigint[])",
                normal,
                [row["msg_id"] for row in rows],
            )
        plan = await connection.fetchval(f"EXPLAIN (FORMAT JSON) {read}", 30, 100, *arguments)
    finally:
        await connection.close()

    scans = [
        node["Node Type"]
        for node in _plan_nodes(json.loads(plan)[0]["Plan"])
        if node.get("Relation Name") == f"q_{normal}"
    ]
    assert scans, "the read does not check the normal queue"
    assert "Seq Scan" not in scans, scans


def _plan_nodes(node: dict[str, Any]) -> list[dict[str, Any]]:
    return [node, *(found for child in node.get("Plans", []) for found in _plan_nodes(child))]


async def _at_least(found: Any, count: int) -> list[Any]:
    rows: list[Any] = await found
    return rows if len(rows) >= count else []
