"""`farm-agent work` as a process: SIGKILL loses nothing, SIGTERM drains, /metrics, bad handlers."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from farm_agent.tasks import submit, submit_many, task_request
from tests.agent.support import runs_of, task_type, tasks_section
from tests.support.agent import AgentProcess, farm_agent_cli, write_config
from tests.support.metrics import sample
from tests.support.queues import query_rows, queue_messages, queue_rows
from tests.support.waiting import wait_until
from tools.services import Postgres

ConfigMaker = Callable[..., dict[str, Any]]


pytestmark = pytest.mark.usefixtures("runs_table")


@pytest.fixture
def start_worker(
    start_agent: Callable[..., AgentProcess],
) -> Callable[[dict[str, Any], str], AgentProcess]:
    """Start `farm-agent work` processes (not waiting for them); all stopped after the test."""

    def start(config: dict[str, Any], name: str) -> AgentProcess:
        return start_agent(config, command="work", name=name, ready=False)

    return start


async def test_worker_killed_mid_task_leaves_it_to_another_worker_and_nothing_is_lost(
    make_config: ConfigMaker,
    postgres: Postgres,
    test_id: str,
    start_worker: Callable[[dict[str, Any], str], AgentProcess],
) -> None:
    slow, quick = task_type(test_id, "slow"), task_type(test_id, "quick")
    config = make_config(
        tasks=tasks_section(
            test_id, {slow: "slow", quick: "succeed"}, visibility_timeout_s=2, concurrency=2
        )
    )
    queue = config["tasks"]["queue"]
    slow_id = await submit(postgres.dsn, slow, {"seconds": 1.5}, queue=queue)
    first = start_worker(config, "first")
    await wait_until(
        lambda: _events(postgres, slow, "started"), "the slow task started on the first worker"
    )
    quick_ids = await submit_many(
        postgres.dsn, [task_request(quick, {"n": n}) for n in range(20)], queue=queue
    )

    first.kill()
    second = start_worker(config, "second")
    finished = await wait_until(
        lambda: _events(postgres, slow, "finished"), "the slow task finished on the second worker"
    )
    await wait_until(
        lambda: _count(queue_rows(postgres.dsn, f"{queue}_normal", "a"), 21), "every task archived"
    )

    started = await _events(postgres, slow, "started")
    assert [run["attempt"] for run in started] == [1, 2]
    assert started[0]["worker"] != finished[0]["worker"]
    assert finished[0]["task_id"] == slow_id
    done = {run["task_id"] for run in await runs_of(postgres.dsn, quick)}
    assert done == set(quick_ids)
    assert await queue_rows(postgres.dsn, f"{queue}_normal") == []
    assert await queue_messages(postgres.dsn, f"{queue}_dlq") == []
    assert second.running


async def test_sigterm_lets_running_tasks_finish_then_exits(
    make_config: ConfigMaker,
    postgres: Postgres,
    test_id: str,
    start_worker: Callable[[dict[str, Any], str], AgentProcess],
) -> None:
    slow = task_type(test_id, "slow")
    config = make_config(tasks=tasks_section(test_id, {slow: "slow"}, concurrency=3))
    queue = config["tasks"]["queue"]
    ids = await submit_many(
        postgres.dsn, [task_request(slow, {"seconds": 2}) for _ in range(3)], queue=queue
    )
    worker = start_worker(config, "worker")
    await wait_until(lambda: _count(_events(postgres, slow, "started"), 3), "three tasks running")

    assert worker.terminate(timeout=20) == 0

    finished = await _events(postgres, slow, "finished")
    assert {run["task_id"] for run in finished} == set(ids)
    archived = await queue_rows(postgres.dsn, f"{queue}_normal", "a")
    assert len(archived) == 3
    assert "given back" not in worker.log()


async def test_sigterm_gives_back_a_task_that_outlasts_the_drain(
    make_config: ConfigMaker,
    postgres: Postgres,
    test_id: str,
    start_worker: Callable[[dict[str, Any], str], AgentProcess],
) -> None:
    slow = task_type(test_id, "slow")
    config = make_config(
        tasks=tasks_section(test_id, {slow: "slow"}, drain_s=1, visibility_timeout_s=60)
    )
    queue = config["tasks"]["queue"]
    await submit(postgres.dsn, slow, {"seconds": 60}, queue=queue)
    worker = start_worker(config, "worker")
    await wait_until(lambda: _events(postgres, slow, "started"), "the task running")

    assert worker.terminate(timeout=20) == 0

    # Visible again at once, not after its 60 s lease: the next worker takes it now.
    [waiting] = await queue_rows(postgres.dsn, f"{queue}_normal")
    assert waiting["read_ct"] == 1
    visible = await _visible(postgres, f"{queue}_normal")
    assert visible == 1
    assert "1 unfinished task(s) given back" in worker.log()


async def test_worker_serves_its_metrics(
    make_config: ConfigMaker,
    postgres: Postgres,
    test_id: str,
    start_worker: Callable[[dict[str, Any], str], AgentProcess],
) -> None:
    quick, broken = task_type(test_id, "quick"), task_type(test_id, "broken")
    config = make_config(
        tasks=tasks_section(test_id, {quick: "succeed", broken: "fail"}, max_attempts=2)
    )
    queue = config["tasks"]["queue"]
    await submit_many(
        postgres.dsn,
        [task_request(quick, n) for n in range(3)] + [task_request(broken, {}, "low")],
        queue=queue,
    )
    await submit(postgres.dsn, quick, 0, "high", queue=queue)
    worker = start_worker(config, "worker")
    await wait_until(
        lambda: queue_messages(postgres.dsn, f"{queue}_dlq"), "the broken task dead-lettered"
    )
    await wait_until(worker.is_serving, "the worker serving its endpoint")

    def page_settled() -> str | None:
        page = worker.metrics()
        if sample(page, "farm_agent_tasks_total", type=quick, outcome="succeeded") != 4:
            return None
        return page if sample(page, "farm_agent_workers_alive") == 1 else None

    page = await wait_until(page_settled, "the metrics page counting every task")
    assert sample(page, "farm_agent_tasks_total", type=broken, outcome="retried") == 1
    assert sample(page, "farm_agent_tasks_total", type=broken, outcome="dead_lettered") == 1
    assert sample(page, "farm_agent_task_duration_seconds_count", type=quick) == 4
    assert sample(page, "farm_agent_task_queue_depth", priority="high") == 0
    assert worker.get("/readyz")[0] == 200


def test_work_with_a_handler_that_cannot_be_imported_exits_2_naming_the_key(
    make_config: ConfigMaker, tmp_path: Path, test_id: str
) -> None:
    tasks = tasks_section(test_id, {})
    tasks["handlers"] = {"irrigate": "farm_handlers.nowhere:run"}
    config = make_config(tasks=tasks)
    path = write_config(tmp_path / "agent.yaml", config)

    result = farm_agent_cli("work", "--config", str(path))

    assert result.returncode == 2
    assert "tasks.handlers.irrigate: cannot load farm_handlers.nowhere:run" in result.stderr
    assert "ModuleNotFoundError" in result.stderr


async def _events(postgres: Postgres, kind: str, event: str) -> list[Any]:
    return [run for run in await runs_of(postgres.dsn, kind) if run["event"] == event]


async def _count(found: Any, count: int) -> list[Any]:
    rows: list[Any] = await found
    return rows if len(rows) >= count else []


async def _visible(postgres: Postgres, queue: str) -> int:
    rows = await query_rows(
        postgres.dsn, f'SELECT count(*) AS n FROM pgmq."q_{queue}" WHERE vt <= now()'
    )
    return int(rows[0]["n"])
