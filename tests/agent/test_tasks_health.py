"""The task figures in the agent's health, `check` and /metrics, on real PostgreSQL+PGMQ."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from farm_agent.config import TasksConfig
from farm_agent.config_file import parse_config
from farm_agent.tasks import read_task_figures, submit_many, task_request
from tests.agent.support import (
    judge,
    running_prober,
    running_worker,
    task_type,
    tasks_section,
    wait_for_metric,
)
from tests.contract import assert_health_contract
from tests.support.agent import AgentProcess, farm_agent, write_config
from tests.support.metrics import sample
from tests.support.queues import create_queues, query_rows
from tests.support.waiting import wait_until
from tools.services import Postgres

ConfigMaker = Callable[..., dict[str, Any]]

pytestmark = pytest.mark.usefixtures("runs_table")


async def test_health_shows_a_known_mix_exactly_and_judges_each_type_on_evidence(
    make_config: ConfigMaker, postgres: Postgres, test_id: str
) -> None:
    steady, failing, rare = (task_type(test_id, name) for name in ("steady", "failing", "rare"))
    config = parse_config(
        make_config(
            tasks=tasks_section(
                test_id, dict.fromkeys((steady, failing, rare), "mixed"), max_attempts=2
            ),
            probes={"thresholds": {"queue_depth": 5}},
        )
    )
    tasks, backend = config.tasks, config.backend
    await create_queues(postgres.dsn, backend.queue, backend.dead_letter_queue)
    mix = {
        steady: ["ok"] * 25,
        failing: ["ok"] * 17 + ["flaky"] + ["permanent"] * 2,
        rare: ["ok", "ok", "permanent"],
    }
    await submit_many(
        postgres.dsn,
        [
            task_request(kind, {"outcome": outcome})
            for kind, all_ in mix.items()
            for outcome in all_
        ],
        queue=tasks.queue,
    )
    worker_id = f"{config.agent_id}:health"
    async with running_worker(config, worker_id):
        await wait_until(lambda: _counted(postgres, tasks, 48), "the 48 tasks counted")
    # Tasks no worker has taken yet: 6 waiting, one more than the threshold.
    waiting = [("high", 2), ("normal", 3), ("low", 1)]
    await submit_many(
        postgres.dsn,
        [task_request(steady, {"outcome": "ok"}, p) for p, count in waiting for _ in range(count)],
        queue=tasks.queue,
    )

    async with running_prober(config) as prober:
        health = judge(config, await prober.run_round())

    published = health.as_json()
    assert_health_contract(published)
    section = published["tasks"]
    assert section["depth"] == {"high": 2, "normal": 3, "low": 1}
    assert section["dlq_depth"] == 3
    counted = {
        kind: {key: figures[key] for key in ("succeeded", "failed", "retried", "dead_lettered")}
        for kind, figures in section["by_type"].items()
    }
    assert counted == {
        steady: {"succeeded": 25, "failed": 0, "retried": 0, "dead_lettered": 0},
        failing: {"succeeded": 18, "failed": 2, "retried": 1, "dead_lettered": 2},
        rare: {"succeeded": 2, "failed": 1, "retried": 0, "dead_lettered": 1},
    }
    assert [section["by_type"][kind]["success_pct"] for kind in mix] == [100.0, 90.0, 66.67]
    assert all(section["by_type"][kind]["p95_s"] is not None for kind in mix)
    assert section["throughput_per_s"] == round(48 / 3600, 3)
    [worker] = section["workers"]
    assert worker == {**worker, "id": worker_id, "alive": False, "running": 0, "concurrency": 4}
    # The queue figures come from the workers' counts (45 of 48), no more from the archive.
    assert published["queue"]["task_success_pct"] == 93.75
    assert published["queue"]["processing_p95_s"] is not None
    assert sorted(health.problems) == sorted(
        [
            "task queue depth 6 > 5 (high 2, normal 3, low 1)",
            "task dead-letter queue holds 3 > 0",
            f"task {failing} success 90 % < 99.5 % (18 of 20 in the last hour)",
        ]
    )
    checks = {check.name: check for check in health.task_checks}
    assert checks[f"task_success {rare}"].ok is None
    assert "too few to judge" in checks[f"task_success {rare}"].detail
    assert checks[f"task_success {steady}"].ok is True
    assert checks["task_workers"].detail == "0 alive, 1 stopped"


async def test_check_shows_each_task_check_and_names_a_worker_killed_without_a_goodbye(
    make_config: ConfigMaker,
    postgres: Postgres,
    test_id: str,
    tmp_path: Path,
    start_agent: Callable[..., AgentProcess],
) -> None:
    kind = task_type(test_id, "quick")
    config = make_config(tasks=tasks_section(test_id, {kind: "succeed"}))
    backend = config["backend"]
    await create_queues(postgres.dsn, backend["queue"], backend["dead_letter_queue"])
    path = write_config(tmp_path / "check.yaml", config)
    worker = start_agent(config, command="work", name="worker")
    worker_id = f"{config['agent_id']}:{worker.pid}"
    await wait_until(lambda: _last_seen_s(postgres, worker_id, 0), "the worker's first beat")

    worker.kill()
    # Three heartbeats (0.5 s each) without a word: silent.
    await wait_until(lambda: _last_seen_s(postgres, worker_id, 1.6), "three silent heartbeats")
    table = await farm_agent("check", "--config", str(path))
    as_json = await farm_agent("check", "--config", str(path), "--json")

    assert table.returncode == 1, table.stdout + table.stderr
    for row in ("task_depth", "task_dead_letters", "task_workers"):
        assert row in table.stdout
    problems = [line for line in table.stdout.splitlines() if line.startswith("problem:")]
    [silent] = [line for line in problems if "silent" in line]
    assert re.fullmatch(
        rf"problem: worker {worker_id} silent for [\d.]+ s \(heartbeat every 0.5 s\); "
        "0 workers alive",
        silent,
    ), silent
    health = json.loads(as_json.stdout)
    assert_health_contract(health)
    assert set(health["tasks"]) == {"depth", "dlq_depth", "throughput_per_s", "by_type", "workers"}
    assert health["tasks"]["depth"] == {"high": 0, "normal": 0, "low": 0}
    [seen] = [entry for entry in health["tasks"]["workers"] if entry["id"] == worker_id]
    assert seen["alive"] is False
    assert seen["last_seen_s"] >= 1.5


async def test_the_agents_metrics_show_task_depth_by_priority_and_the_workers_alive(
    make_config: ConfigMaker,
    postgres: Postgres,
    test_id: str,
    start_agent: Callable[..., AgentProcess],
) -> None:
    kind = task_type(test_id, "waiting")
    config = make_config(tasks=tasks_section(test_id, {kind: "succeed"}))
    tasks = parse_config(config).tasks
    waiting = [("high", 2), ("low", 1)]
    await submit_many(
        postgres.dsn,
        [task_request(kind, None, p) for p, count in waiting for _ in range(count)],
        queue=tasks.queue,
    )
    # A worker of another task queue: alive, and it leaves these tasks waiting.
    elsewhere = make_config(tasks=tasks_section(test_id, {}, queue=f"{test_id[:30]}_wk"))
    async with running_worker(parse_config(elsewhere)):
        await wait_until(lambda: _alive(postgres), "the worker's first beat")
        # On a thread: the worker in this event loop keeps beating meanwhile.
        agent = await asyncio.to_thread(start_agent, config)
        await wait_for_metric(agent, "farm_agent_workers_alive", 1)
        page = agent.metrics()

    assert sample(page, "farm_agent_workers_alive") == 1
    depths = {
        priority: sample(page, "farm_agent_task_queue_depth", priority=priority)
        for priority in ("high", "normal", "low")
    }
    assert depths == {"high": 2, "normal": 0, "low": 1}


async def _counted(postgres: Postgres, tasks: TasksConfig, count: int) -> bool:
    connection = await asyncpg.connect(postgres.dsn)
    try:
        figures = await read_task_figures(connection, tasks)
    finally:
        await connection.close()
    total = figures.all_types
    return total is not None and total.succeeded + total.dead_lettered >= count


async def _last_seen_s(postgres: Postgres, worker_id: str, at_least: float) -> bool:
    rows = await query_rows(
        postgres.dsn,
        "SELECT extract(epoch FROM now() - last_seen)::float8 AS seconds"
        " FROM farm_resilience.task_workers WHERE id = $1",
        worker_id,
    )
    return bool(rows) and rows[0]["seconds"] >= at_least


async def _alive(postgres: Postgres) -> bool:
    [row] = await query_rows(
        postgres.dsn, "SELECT to_regclass('farm_resilience.task_workers') IS NOT NULL AS made"
    )
    if not row["made"]:
        return False  # the worker has not set its tables up yet
    rows = await query_rows(
        postgres.dsn, "SELECT count(*) AS alive FROM farm_resilience.task_workers WHERE NOT stopped"
    )
    return bool(rows[0]["alive"])
