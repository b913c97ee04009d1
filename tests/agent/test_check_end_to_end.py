"""`farm-agent check` covers everything: Home Assistant's API and hub, a task through a worker."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp import web

from farm_agent.config import HomeAssistantConfig
from farm_agent.config_file import parse_config
from farm_agent.health.probes.home_assistant import check_home_assistant
from farm_agent.tasks import sql
from farm_agent.tasks.canary import task_roundtrip
from tests.agent.support import running_worker, tasks_section
from tests.agent.test_check_cli import ready_config
from tests.support.agent import TEST_SECRET, AgentProcess, farm_agent
from tests.support.queues import create_queues, queue_messages
from tools.services import Postgres

ConfigMaker = Callable[..., dict[str, Any]]
HUB = "binary_sensor.farm_resilience_degraded"
TOKEN = f"ha-token-{TEST_SECRET}"


@dataclass
class HomeAssistantStandIn:
    """Exactly the two REST calls the check makes, as Home Assistant answers them."""

    url: str
    hub_state: str | None = "off"  # None: the hub's entity does not exist

    def config(self, token: str = TOKEN) -> HomeAssistantConfig:
        return HomeAssistantConfig(url=self.url, token=token, hub_entity=HUB)


@pytest.fixture
async def home_assistant() -> AsyncIterator[HomeAssistantStandIn]:
    stand_in = HomeAssistantStandIn("")

    def authorised(request: web.Request) -> bool:
        return request.headers.get("Authorization") == f"Bearer {TOKEN}"

    async def api(request: web.Request) -> web.Response:
        if not authorised(request):
            return web.Response(status=401, text="401: Unauthorized")
        return web.json_response({"message": "API running."})

    async def state(request: web.Request) -> web.Response:
        if not authorised(request):
            return web.Response(status=401, text="401: Unauthorized")
        if request.match_info["entity_id"] != HUB or stand_in.hub_state is None:
            return web.json_response({"message": "Entity not found."}, status=404)
        return web.json_response({"entity_id": HUB, "state": stand_in.hub_state})

    app = web.Application()
    app.router.add_get("/api/", api)
    app.router.add_get("/api/states/{entity_id}", state)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    stand_in.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        yield stand_in
    finally:
        await runner.cleanup()


# Home Assistant -----------------------------------------------------------------


async def test_check_says_home_assistant_answers_with_the_hub_loaded_in_a_line_and_a_key(
    make_config: ConfigMaker,
    postgres: Postgres,
    tmp_path: Path,
    home_assistant: HomeAssistantStandIn,
) -> None:
    section = {"url": home_assistant.url, "token": TOKEN}
    path = await ready_config(make_config, postgres, tmp_path, home_assistant=section)

    table = await farm_agent("check", "--config", str(path))
    as_json = await farm_agent("check", "--config", str(path), "--json")

    assert table.returncode == 0, table.stdout + table.stderr
    assert "home_assistant: ok in " in table.stdout
    assert f"API answers; hub loaded ({HUB} off)" in table.stdout
    health = json.loads(as_json.stdout)
    assert health["home_assistant"]["ok"] is True
    assert health["home_assistant"]["detail"] == f"API answers; hub loaded ({HUB} off)"
    assert health["status"] == "ok"


async def test_a_refused_token_makes_check_exit_1_and_the_token_is_never_shown(
    make_config: ConfigMaker,
    postgres: Postgres,
    tmp_path: Path,
    home_assistant: HomeAssistantStandIn,
) -> None:
    section = {"url": home_assistant.url, "token": f"wrong-{TEST_SECRET}"}
    path = await ready_config(make_config, postgres, tmp_path, home_assistant=section)

    result = await farm_agent("check", "--config", str(path), "--json")

    health = json.loads(result.stdout)
    assert result.returncode == 1
    assert health["status"] == "degraded"
    assert "home_assistant: the token is refused (401)" in health["problems"]
    assert TEST_SECRET not in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("hub_state", "detail"),
    [
        (None, f"Farm Resilience hub not loaded: {HUB} not found"),
        ("unavailable", f"Farm Resilience hub not loaded: {HUB} is unavailable"),
    ],
)
async def test_a_hub_that_is_not_loaded_is_named(
    home_assistant: HomeAssistantStandIn, hub_state: str | None, detail: str
) -> None:
    home_assistant.hub_state = hub_state

    outcome = await check_home_assistant(home_assistant.config(), timeout_s=5)

    assert (outcome.ok, outcome.detail) == (False, detail)
    assert outcome.problem == f"home_assistant: {detail}"


async def test_home_assistant_that_does_not_answer_is_named_without_its_token() -> None:
    config = HomeAssistantConfig(url=f"http://127.0.0.1:1/?t={TOKEN}", token=TOKEN, hub_entity=HUB)

    outcome = await check_home_assistant(config, timeout_s=5)

    assert outcome.ok is False
    assert outcome.detail.startswith("ClientConnectorError: Cannot connect to host 127.0.0.1:1")
    assert TEST_SECRET not in outcome.detail


async def test_without_home_assistant_configured_the_check_is_skipped_not_failed() -> None:
    config = parse_config(
        {"agent_id": "farm-east", "backend": {"direct_dsn": "postgresql://x@y/z"}}
    )

    outcome = await check_home_assistant(config.home_assistant, timeout_s=5)

    assert outcome.ok is None
    assert outcome.detail == "skipped: home_assistant.url is not set"
    assert outcome.problem is None


# Background tasks end to end ----------------------------------------------------


async def test_check_sees_a_canary_task_done_by_a_running_worker(
    make_config: ConfigMaker,
    postgres: Postgres,
    tmp_path: Path,
    test_id: str,
    start_agent: Callable[..., AgentProcess],
) -> None:
    config = make_config(tasks=tasks_section(test_id, {}))
    start_agent(config, command="work", name="worker")
    path = await ready_config(make_config, postgres, tmp_path, tasks=tasks_section(test_id, {}))

    result = await farm_agent("check", "--config", str(path), "--json")

    health = json.loads(result.stdout)
    assert result.returncode == 0, result.stdout + result.stderr
    roundtrip = health["task_roundtrip"]
    assert roundtrip["ok"] is True
    assert roundtrip["detail"] == "a canary task done by a worker"
    assert roundtrip["latency_ms"] > 0
    archived = await _archived(postgres, f"{config['tasks']['queue']}_high")
    assert [message["type"] for message in archived] == ["canary"]


async def test_a_canary_no_worker_takes_is_a_problem_and_is_not_left_behind(
    make_config: ConfigMaker, postgres: Postgres, test_id: str
) -> None:
    # A worker is alive, but serves other queues than this config's.
    serving = parse_config(make_config(tasks=tasks_section(test_id, {})))
    elsewhere = tasks_section(f"{test_id}x", {})
    config = parse_config(make_config(tasks=elsewhere, probes={"thresholds": {"processing_s": 1}}))
    queue = config.tasks.queue_for("high")
    await create_queues(postgres.dsn, queue)

    async with running_worker(serving):
        await asyncio.sleep(0.3)  # its first heartbeat
        outcome = await task_roundtrip(config)

    assert outcome.ok is False
    assert outcome.detail == f"a canary task not done within 1 s ({queue})"
    assert await queue_messages(postgres.dsn, queue) == []


async def test_a_worker_without_the_canary_handler_dead_letters_it_and_that_is_named(
    make_config: ConfigMaker, test_id: str
) -> None:
    section = tasks_section(test_id, {})
    worker = parse_config(make_config(tasks={**section, "handlers": {"canary": None}}))
    config = parse_config(make_config(tasks=section))

    async with running_worker(worker):
        await asyncio.sleep(0.3)
        outcome = await task_roundtrip(config)

    assert (outcome.ok, outcome.detail) == (False, "the canary task was dead-lettered, not done")


async def test_a_worker_that_went_silent_without_stopping_is_a_problem_at_once(
    make_config: ConfigMaker, postgres: Postgres, test_id: str
) -> None:
    config = parse_config(make_config(tasks=tasks_section(test_id, {})))
    connection = await asyncpg.connect(postgres.dsn)
    try:
        await sql.set_up_tasks(connection, config)
        await connection.execute(
            "INSERT INTO farm_resilience.task_workers (id, last_seen, running, concurrency,"
            " heartbeat_s, stopped) VALUES ($1, now() - interval '90 seconds', 0, 4, 1, false)",
            f"{test_id}:killed",
        )
        outcome = await task_roundtrip(config)
    finally:
        await connection.execute(
            "DELETE FROM farm_resilience.task_workers WHERE id = $1", f"{test_id}:killed"
        )
        await connection.close()

    assert outcome.ok is False
    assert outcome.detail.startswith("no task worker alive: ")
    assert outcome.detail.endswith(" s ago without saying goodbye")


async def test_no_canary_without_a_running_worker_or_a_canary_handler(
    make_config: ConfigMaker, test_id: str
) -> None:
    section = tasks_section(test_id, {})
    no_handler = parse_config(make_config(tasks={**section, "handlers": {"canary": None}}))
    config = parse_config(make_config(tasks=section))

    without_handler = await task_roundtrip(no_handler)
    without_worker = await task_roundtrip(config)

    assert without_handler.ok is None
    assert without_handler.detail == "skipped: no canary handler (tasks.handlers.canary is null)"
    assert without_worker.ok is None
    assert without_worker.detail.startswith("skipped: no task worker")


async def _archived(postgres: Postgres, queue: str) -> list[dict[str, Any]]:
    connection = await asyncpg.connect(postgres.dsn)
    try:
        rows = await connection.fetch(f'SELECT message::text FROM pgmq."a_{queue}"')
    finally:
        await connection.close()
    return [json.loads(row["message"]) for row in rows]
