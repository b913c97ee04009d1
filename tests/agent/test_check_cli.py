"""`farm-agent check`: every probe once, a table or the health JSON, exit 0 / 1 / 2."""

from __future__ import annotations

import configparser
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from farm_agent.topics import status_topic
from tests.agent.support import Endpoint, wait_for_metric
from tests.contract import assert_health_contract
from tests.support.agent import REPO, TEST_SECRET, AgentProcess, farm_agent, write_config
from tests.support.mqtt import Watcher, publisher
from tests.support.queues import create_queues, send
from tests.support.waiting import wait_until
from tools.services import Mosquitto, Postgres

ConfigMaker = Callable[..., dict[str, Any]]
PACKAGING = REPO / "agent" / "packaging"
CLOSED_DSN = f"postgresql://postgres:{TEST_SECRET}@127.0.0.1:1/farm"


async def ready_config(
    make_config: ConfigMaker, postgres: Postgres, tmp_path: Path, **sections: Any
) -> Path:
    """A config file whose queues exist, as after the agent's first start."""
    config = make_config(**sections)
    backend = config["backend"]
    await create_queues(postgres.dsn, backend["queue"], backend["dead_letter_queue"])
    return write_config(tmp_path / "check.yaml", config)


async def test_check_exits_0_with_a_readable_table_when_everything_is_healthy(
    make_config: ConfigMaker, postgres: Postgres, tmp_path: Path
) -> None:
    path = await ready_config(make_config, postgres, tmp_path)

    result = await farm_agent("check", "--config", str(path))

    assert result.returncode == 0, result.stdout + result.stderr
    for name in ("database_pooler", "database_direct", "queue", "tasks", "mqtt_round_trip"):
        assert name in result.stdout
    assert "status: ok" in result.stdout
    assert "problem" not in result.stdout


async def test_check_json_is_the_health_contract_with_every_probe(
    make_config: ConfigMaker, postgres: Postgres, tmp_path: Path, endpoint: Endpoint
) -> None:
    http = [{"name": "api_health", "url": endpoint.url("/cached"), "expect_cache": True}]
    path = await ready_config(make_config, postgres, tmp_path, probes={"http": http})

    result = await farm_agent("check", "--config", str(path), "--json")

    assert result.returncode == 0, result.stdout + result.stderr
    health = json.loads(result.stdout)
    assert_health_contract(health)
    assert health["status"] == "ok"
    assert health["backend"]["route"] == "pooler"
    assert [probe["name"] for probe in health["probes"]] == [
        "database_pooler",
        "database_direct",
        "queue",
        "tasks",
        "api_health",
        "mqtt_round_trip",
    ]
    assert all(probe["ok"] for probe in health["probes"])
    assert health["probes"][4]["cache"]["revalidated_304"] is True


async def test_check_exits_1_when_degraded_and_names_the_problem(
    make_config: ConfigMaker, postgres: Postgres, tmp_path: Path
) -> None:
    path = await ready_config(
        make_config, postgres, tmp_path, probes={"thresholds": {"queue_depth": 1}}
    )
    queue = make_config()["backend"]["queue"]
    await send(postgres.dsn, queue, {"n": 1}, {"n": 2})

    table = await farm_agent("check", "--config", str(path))
    as_json = await farm_agent("check", "--config", str(path), "--json")

    assert table.returncode == 1
    assert "queue depth 2 > 1" in table.stdout
    assert "status: degraded" in table.stdout
    assert as_json.returncode == 1
    health = json.loads(as_json.stdout)
    assert (health["status"], health["problems"]) == ("degraded", ["queue depth 2 > 1"])


async def test_check_bounds_the_problems_to_twenty_of_at_most_two_hundred_characters(
    make_config: ConfigMaker, postgres: Postgres, endpoint: Endpoint, tmp_path: Path
) -> None:
    # 25 failing endpoints whose errors quote a long path: 25 long problems.
    long_path = "/loop/" + "a" * 300
    http = [{"name": f"api_{n:02}", "url": endpoint.url(long_path)} for n in range(25)]
    path = await ready_config(make_config, postgres, tmp_path, probes={"http": http})

    checked = await farm_agent("check", "--config", str(path), "--json", timeout=120)

    health = json.loads(checked.stdout)
    problems = health["problems"]
    assert checked.returncode == 1
    assert len(problems) == 20
    assert all(len(problem) <= 200 for problem in problems)
    assert problems[0].startswith("api_00: TooManyRedirects")
    assert problems[0].endswith("…")
    assert problems[-1] == "and 6 more"
    assert len([p for p in health["probes"] if p["kind"] == "http"]) == 25, "every probe shown"


async def test_check_exits_1_down_when_no_route_reaches_the_database_and_hides_the_password(
    make_config: ConfigMaker, tmp_path: Path
) -> None:
    config = make_config(pooler_dsn=CLOSED_DSN, direct_dsn=CLOSED_DSN.replace(":1/", ":2/"))
    path = write_config(tmp_path / "check.yaml", config)

    table = await farm_agent("check", "--config", str(path))
    as_json = await farm_agent("check", "--config", str(path), "--json")

    assert table.returncode == 1
    assert "no route to the database: pooler and direct both fail" in table.stdout
    assert "status: down" in table.stdout
    health = json.loads(as_json.stdout)
    assert health["status"] == "down"
    assert health["backend"]["route"] == "none"
    assert health["queue"]["depth"] is None
    for output in (table.stdout, table.stderr, as_json.stdout, as_json.stderr):
        assert TEST_SECRET not in output
        assert "127.0.0.1:1/farm" not in output


async def test_check_exits_1_down_when_the_broker_is_unreachable(
    make_config: ConfigMaker, postgres: Postgres, tmp_path: Path
) -> None:
    path = await ready_config(make_config, postgres, tmp_path, mqtt_port=1, probes={"timeout_s": 1})

    result = await farm_agent("check", "--config", str(path), "--json")

    assert result.returncode == 1
    health = json.loads(result.stdout)
    assert health["status"] == "down"
    assert "MQTT round trip failed: broker 127.0.0.1:1 not connected" in health["problems"]
    assert_health_contract(health)


async def test_check_exits_2_on_a_bad_config_naming_the_key(tmp_path: Path) -> None:
    path = write_config(tmp_path / "check.yaml", {"agent_id": "Farm East!", "backend": {}})

    result = await farm_agent("check", "--config", str(path), "--json")

    assert result.returncode == 2
    assert result.stdout == ""
    assert "agent_id:" in result.stderr


async def test_check_beside_a_running_agent_leaves_its_mqtt_session_alone(
    make_config: ConfigMaker,
    start_agent: Callable[..., AgentProcess],
    postgres: Postgres,
    tmp_path: Path,
) -> None:
    config = make_config()
    agent = start_agent(config)
    path = write_config(tmp_path / "check.yaml", config)

    result = await farm_agent("check", "--config", str(path), "--json")

    assert result.returncode == 0, result.stdout + result.stderr
    assert agent.running
    assert "disconnected" not in agent.log()


async def test_check_counts_the_readings_waiting_in_the_agents_spool(
    make_config: ConfigMaker,
    start_agent: Callable[..., AgentProcess],
    mosquitto: Mosquitto,
    watch: Callable[..., Watcher],
    tmp_path: Path,
    test_id: str,
) -> None:
    config = make_config(pooler_dsn=CLOSED_DSN, direct_dsn=None)
    status = status_topic("farm_resilience", config["agent_id"])
    watcher = watch(status)
    agent = start_agent(config, ready=False)
    await wait_until(agent.is_serving, "the agent serving its endpoint")
    # The agent subscribes right after announcing itself, on the same connection.
    await watcher.wait_for(status, lambda m: m.text == "online")
    with publisher(mosquitto.port, f"{test_id}-pub") as device:
        device.publish_all([(f"{test_id}/barn/temp", str(n)) for n in range(3)])
    await wait_for_metric(agent, "farm_agent_spool_depth", 3)
    assert agent.terminate() == 0
    path = write_config(tmp_path / "check.yaml", config)

    result = await farm_agent("check", "--config", str(path), "--json")

    assert json.loads(result.stdout)["relay"]["spool_depth"] == 3


def unit(name: str) -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser(strict=False)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(PACKAGING / name)
    return parser


def test_systemd_runs_the_agent_hardened_and_the_check_every_five_minutes() -> None:
    agent, check, timer = (
        unit("farm-agent.service"),
        unit("farm-agent-check.service"),
        unit("farm-agent-check.timer"),
    )

    assert agent["Service"]["ExecStart"].endswith("farm-agent run")
    assert agent["Service"]["Restart"] == "always"
    assert int(agent["Service"]["TimeoutStopSec"]) > 10, "SIGTERM drains within 10 s"
    assert check["Service"]["Type"] == "oneshot"
    assert check["Service"]["ExecStart"].endswith("farm-agent check")
    assert timer["Timer"]["OnUnitActiveSec"] == "5min"
    for service in (agent, check):
        section = service["Service"]
        assert section["User"] == "farm-agent"
        assert section["Environment"] == "FARM_AGENT_CONFIG=/etc/farm-agent/agent.yaml"
        assert section["NoNewPrivileges"] == "yes"
        assert section["ProtectSystem"] == "strict"
        assert section["CapabilityBoundingSet"] == ""
