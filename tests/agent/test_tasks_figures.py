"""Task figures against a known mix: every count exact, p95 within the histogram's error."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from typing import Any

import asyncpg

from farm_agent.config import TasksConfig
from farm_agent.config_file import parse_config
from farm_agent.histogram import ABSOLUTE_ERROR_S, RELATIVE_ERROR
from farm_agent.tasks import TaskHealth, read_task_figures, submit_many, task_request
from tests.agent.support import running_worker, task_type, tasks_section
from tests.support.queues import query_rows
from tests.support.waiting import wait_until
from tools.services import Postgres

ConfigMaker = Callable[..., dict[str, Any]]


def nearest_rank(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q * len(ordered))) - 1]


def within_histogram_error(estimate: float | None, exact: float) -> bool:
    assert estimate is not None
    return abs(estimate - exact) <= RELATIVE_ERROR * exact + ABSOLUTE_ERROR_S + 1e-6


async def test_figures_of_a_known_mix_of_1000_tasks_are_exact(
    make_config: ConfigMaker, postgres: Postgres, test_id: str
) -> None:
    steady, fussy, flaky = (task_type(test_id, name) for name in ("steady", "fussy", "flaky"))
    config = parse_config(
        make_config(
            tasks=tasks_section(
                test_id,
                dict.fromkeys((steady, fussy, flaky), "mixed"),
                max_attempts=2,
                concurrency=8,
                # Leases that outlast a loaded machine: a lease that runs out while the
                # outcome waits to commit makes PGMQ count a read, hence an attempt, more.
                visibility_timeout_s=30,
            )
        )
    )
    shuffle = random.Random(12)
    outcomes = {
        steady: ["ok"] * 400,
        fussy: ["permanent"] * 30 + ["ok"] * 270,
        flaky: ["flaky"] * 60 + ["broken"] * 15 + ["ok"] * 225,
    }
    requests = [
        task_request(kind, {"outcome": outcome, "sleep": shuffle.uniform(0, 0.02)})
        for kind, kind_outcomes in outcomes.items()
        for outcome in kind_outcomes
    ]
    shuffle.shuffle(requests)
    tasks = config.tasks
    await submit_many(postgres.dsn, requests, queue=tasks.queue)

    connection = await asyncpg.connect(postgres.dsn)
    try:
        async with running_worker(config, f"{config.agent_id}:figures"):
            await wait_until(
                lambda: _settled(postgres, tasks.queue_for("normal"), tasks.dead_letter_queue),
                "all 1000 tasks settled",
                timeout=300,  # a loaded CI machine; it returns as soon as they are
            )
            figures = await wait_until(
                lambda: _all_counted(connection, tasks, set(outcomes)),
                "the figures of all 1000 tasks",
            )
    finally:
        await connection.close()

    counted = {
        kind: (entry.succeeded, entry.failed, entry.retried, entry.dead_lettered)
        for kind, entry in figures.by_type.items()
        if kind in outcomes
    }
    assert counted == {
        steady: (400, 0, 0, 0),
        fussy: (270, 30, 0, 30),
        flaky: (285, 15, 75, 15),
    }
    assert figures.by_type[steady].success_pct == 100
    assert figures.by_type[fussy].success_pct == 90
    assert figures.by_type[flaky].success_pct == 95
    assert figures.throughput_per_s is not None
    assert figures.throughput_per_s >= 1000 / 3600
    [worker] = [w for w in figures.workers if w.id == f"{config.agent_id}:figures"]
    assert (worker.alive, worker.concurrency) == (True, 8)
    # The latencies the archive holds (enqueue to archive, read to start) are the truth.
    archive = await query_rows(
        postgres.dsn,
        f"SELECT message ->> 'type' AS type, extract(epoch FROM archived_at - enqueued_at)"
        f"::float8 AS total_s, extract(epoch FROM last_read_at - enqueued_at)::float8 AS wait_s"
        f' FROM pgmq."a_{tasks.queue_for("normal")}"',
    )
    for kind in outcomes:
        totals = [row["total_s"] for row in archive if row["type"] == kind]
        waits = [row["wait_s"] for row in archive if row["type"] == kind]
        entry = figures.by_type[kind]
        assert within_histogram_error(entry.p95_s, nearest_rank(totals, 0.95)), kind
        assert within_histogram_error(entry.p50_s, nearest_rank(totals, 0.5)), kind
        assert within_histogram_error(entry.wait_p95_s, nearest_rank(waits, 0.95)), kind


async def _settled(postgres: Postgres, queue: str, dead_letter_queue: str) -> bool:
    [exists] = await query_rows(
        postgres.dsn, "SELECT to_regclass($1) IS NOT NULL AS yes", f"pgmq.q_{dead_letter_queue}"
    )
    if not exists["yes"]:
        return False  # the worker has not set its queues up yet
    [row] = await query_rows(
        postgres.dsn,
        f'SELECT (SELECT count(*) FROM pgmq."a_{queue}") AS archived,'
        f' (SELECT count(*) FROM pgmq."q_{dead_letter_queue}") AS dead,'
        f' (SELECT count(*) FROM pgmq."q_{queue}") AS waiting',
    )
    return bool(row["archived"] + row["dead"] == 1000 and row["waiting"] == 0)


async def _all_counted(
    connection: asyncpg.Connection, tasks: TasksConfig, kinds: set[str]
) -> TaskHealth | None:
    figures = await read_task_figures(connection, tasks)
    settled = sum(
        entry.succeeded + entry.dead_lettered
        for kind, entry in figures.by_type.items()
        if kind in kinds
    )
    return figures if settled >= 1000 else None
