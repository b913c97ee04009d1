"""The objectives in the running agent: health JSON, /metrics, `check`, restarts, a full disk."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from farm_agent import __version__
from farm_agent.config_file import parse_config
from farm_agent.database import Route
from farm_agent.health.history import History
from farm_agent.health.slo import Events, SloReport
from farm_agent.health.slo_tracker import SloTracker
from farm_agent.relay import idle_snapshot
from tests.agent.support import fill, healthy_round
from tests.support.agent import AgentProcess, farm_agent_cli, write_config
from tests.support.metrics import sample
from tests.support.mqtt import publisher
from tests.support.queues import wait_for_messages
from tests.support.waiting import wait_until
from tools.services import Mosquitto, Postgres

BASE_S = 1_800_000_000


def objectives_of(health: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {objective["name"]: objective for objective in health["slo"]["objectives"]}


def database_rounds(agent: AgentProcess) -> int:
    health = agent.health()
    return 0 if health is None else int(objectives_of(health)["database_availability"]["total"])


async def test_the_agent_reports_its_version_and_objectives_and_a_restart_keeps_the_history(
    make_config: Callable[..., dict[str, Any]],
    start_agent: Callable[..., AgentProcess],
    tmp_path: Path,
) -> None:
    # The spec's objectives (not the tests' default); the task figures are the session's.
    config = make_config(probes={"interval_s": 0.2, "timeout_s": 2}, slo={"objectives": None})
    agent = start_agent(config)
    await wait_until(lambda: database_rounds(agent) >= 3, "three probe rounds judged")

    health = agent.health()
    assert health is not None
    assert health["version"] == __version__ == "0.2.0"
    assert health["slo"]["window_days"] == 30
    objectives = objectives_of(health)
    assert list(objectives) == [
        "database_availability",
        "api_availability",
        "error_rate",
        "task_success",
        "task_latency",
    ]
    database = objectives["database_availability"]
    assert database["status"] == "ok"
    assert database["sli_pct"] == 100.0
    assert database["budget_remaining_pct"] is None, "too few rounds to measure a budget yet"
    assert (database["burn_rate_1h"], database["burn_rate_6h"]) == (0.0, 0.0)
    assert objectives["api_availability"]["status"] == "unknown", "no HTTP probe configured"
    page = agent.metrics()
    assert sample(page, "farm_agent_build_info", version=__version__) == 1
    assert sample(page, "farm_agent_slo_sli_ratio", objective="database_availability") == 1
    budget = sample(page, "farm_agent_slo_budget_remaining_ratio", objective="error_rate")
    assert budget is not None
    assert math.isnan(budget)
    assert sample(page, "farm_agent_slo_burn_rate", objective="error_rate", window="5m") == 0

    agent.terminate()
    history = History.open_read_only(parse_config(config, tmp_path).slo.history_path)
    assert history is not None
    assert history.latest_minute is not None
    kept = history.window_events(history.latest_minute, 30)["route/any"].window
    history.close()
    assert kept.total >= 3
    assert kept == Events(kept.total, kept.total)

    # `check` reads the stopped agent's history and adds nothing to it.
    path = write_config(tmp_path / "check.yaml", config)
    checked = json.loads(farm_agent_cli("check", "--config", str(path), "--json").stdout)
    assert objectives_of(checked)["database_availability"]["total"] == kept.total
    assert checked["version"] == __version__
    table = farm_agent_cli("check", "--config", str(path)).stdout
    line = next(line for line in table.splitlines() if "database_availability" in line)
    assert "service level objectives over 30 days" in table
    assert [cell.strip() for cell in line.split("│")[1:-1]] == [
        "database_availability",
        "99.9 %",
        "100 %",
        "-",
        "0x",
        "0x",
        "ok",
    ]

    agent.start()
    agent.wait_ready()
    await wait_until(
        lambda: database_rounds(agent) > kept.total, "counting on from the kept rounds"
    )


async def test_a_full_history_disk_is_one_logged_problem_and_the_rounds_carry_on(
    make_config: Callable[..., dict[str, Any]],
    small_disk: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    config = parse_config(
        make_config(
            slo={
                "objectives": [{"name": "database_availability"}],
                "history_path": str(small_disk / "history.db"),
            }
        )
    )
    tracker = SloTracker(config)
    relay = idle_snapshot(Route.POOLER, config.spool.path)

    async def observe(second: int) -> SloReport:
        return await tracker.observe(healthy_round(), relay, BASE_S + second, Route.POOLER)

    assert (await observe(0)).notes == ()
    ballast = fill(small_disk)
    with caplog.at_level(logging.INFO, "farm_agent"):
        full = [await observe(second) for second in (30, 60, 90)]
        ballast.unlink()
        recovered = await observe(120)
    await tracker.close()

    assert [report.notes for report in full] == [
        ("SLO history not written (database or disk is full)",)
    ] * 3
    assert [report.objectives[0].window for report in full] == [Events(2, 2)] * 3
    assert full[0].problems[0] == "SLO history not written (database or disk is full)"
    assert [record.getMessage() for record in caplog.records] == [
        "SLO history not written (database or disk is full); the relay carries on,"
        " the SLOs it feeds are unknown",
        "SLO history written again",
    ]
    assert recovered.notes == ()
    assert recovered.objectives[0].window == Events(2, 2)


async def test_an_agent_whose_history_cannot_be_kept_still_relays_and_says_why(
    make_config: Callable[..., dict[str, Any]],
    start_agent: Callable[..., AgentProcess],
    mosquitto: Mosquitto,
    postgres: Postgres,
    test_id: str,
    tmp_path: Path,
) -> None:
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the history's folder should be")
    config = make_config(
        probes={"interval_s": 0.2, "timeout_s": 2},
        slo={
            "history_path": str(blocked / "history.db"),
            "objectives": [{"name": "database_availability"}],
        },
    )
    agent = start_agent(config)

    with publisher(mosquitto.port, f"{test_id}-sensor") as sensor:
        sensor.publish(f"{test_id}/silo/level", "41.5", wait=True)
    relayed = await wait_for_messages(postgres.dsn, config["backend"]["queue"], 1)
    problems = await wait_until(agent.problems, "a problem reported")

    assert [message["payload"] for message in relayed] == [41.5]
    assert len(problems) == 1
    assert problems[0].startswith(f"SLO history folder {blocked} is not usable (")
    assert agent.readiness()["ready"] is True
