"""`farm-agent` on the command line: validate, bad configs, version, help, SIGTERM."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from farm_agent import __version__
from farm_agent.topics import filters_overlap
from tests.support.agent import REPO, TEST_SECRET, AgentProcess, farm_agent_cli, write_config
from tests.support.mqtt import publisher
from tests.support.queues import wait_for_messages
from tools.services import Mosquitto, Postgres

SECRET = TEST_SECRET


farm_agent = farm_agent_cli


def valid_config() -> dict[str, Any]:
    return {
        "agent_id": "farm-east",
        "mqtt": {"host": "127.0.0.1", "port": 1883, "password": SECRET, "username": "farm"},
        "backend": {
            "pooler_dsn": f"postgresql://postgres.ref:{SECRET}@pooler.example:6543/postgres",
            "direct_dsn": f"postgresql://postgres:{SECRET}@db.example:5432/postgres",
        },
    }


def test_validate_accepts_a_good_config(tmp_path: Path) -> None:
    path = write_config(tmp_path / "agent.yaml", valid_config())

    result = farm_agent("validate", "--config", str(path))

    assert result.returncode == 0, result.stderr
    assert "valid" in result.stdout
    assert SECRET not in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (lambda c: c.pop("agent_id"), "agent_id: required key is missing"),
        (lambda c: c["mqtt"].update(port="eighteen"), "mqtt.port:"),
        (lambda c: c["mqtt"].update(hostt="x"), "mqtt.hostt: unknown key"),
        (lambda c: c["backend"].update(batch_size=0), "backend.batch_size:"),
        (lambda c: c.update(agent_id="Farm East!"), "agent_id:"),
        (
            lambda c: c["backend"].update(pooler_dsn=f"mysql://u:{SECRET}@h/db"),
            "backend.pooler_dsn: must start with postgresql://",
        ),
        (
            lambda c: c["backend"].update(direct_dsn=f"postgresql://u:{SECRET}@:5432/db"),
            "backend.direct_dsn: has no host",
        ),
        (
            lambda c: c["backend"].update(pooler_dsn=None, direct_dsn=None),
            "backend: set pooler_dsn, direct_dsn or both",
        ),
        (lambda c: c["backend"].update(queue="Bad-Queue"), "backend.queue:"),
        (lambda c: c["mqtt"].update(topics=["farm/#/x"]), "mqtt.topics.0:"),
        (
            lambda c: c["mqtt"].update(password=None, password_file="/nonexistent/pw"),
            "mqtt.password: set only one of password and password_file",
        ),
        (
            lambda c: c["mqtt"].pop("password") and c["mqtt"].update(password_file="/nowhere/pw"),
            "mqtt.password_file: cannot read /nowhere/pw",
        ),
        (lambda c: c["mqtt"].update(password="${FARM_TEST_UNSET_VAR}"), "FARM_TEST_UNSET_VAR"),
    ],
)
def test_bad_config_exits_2_naming_the_key_and_never_the_password(
    tmp_path: Path, change: Callable[[dict[str, Any]], object], named: str
) -> None:
    config = valid_config()
    change(config)
    path = write_config(tmp_path / "agent.yaml", config)

    result = farm_agent("validate", "--config", str(path))

    assert result.returncode == 2
    assert named in result.stderr
    assert SECRET not in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("topics", "mqtt", "named"),
    [
        (["#"], {}, "mqtt.topics.0: '#' overlaps mqtt.topic_prefix 'farm_resilience'"),
        (["farm/#", "farm_resilience/#"], {}, "mqtt.topics.1: 'farm_resilience/#' overlaps"),
        (["+/agent/#"], {}, "mqtt.topics.0: '+/agent/#' overlaps mqtt.topic_prefix"),
        (["$share/relay/+/agent/+/health"], {}, "overlaps mqtt.topic_prefix"),
        (["farm/#"], {"topic_prefix": "farm"}, "overlaps mqtt.topic_prefix 'farm'"),
        (["homeassistant/status"], {}, "overlaps mqtt.discovery_prefix 'homeassistant'"),
        (["+/+"], {}, "overlaps mqtt.discovery_prefix 'homeassistant'"),
        (["farm/#"], {"topic_prefix": "farm/+"}, "mqtt.topic_prefix: must be a plain topic"),
    ],
)
def test_topics_overlapping_the_agents_own_prefixes_are_refused_naming_both_keys(
    tmp_path: Path, topics: list[str], mqtt: dict[str, Any], named: str
) -> None:
    config = valid_config()
    config["mqtt"].update(topics=topics, **mqtt)
    path = write_config(tmp_path / "agent.yaml", config)

    result = farm_agent("validate", "--config", str(path))

    assert result.returncode == 2
    assert named in result.stderr


@pytest.mark.parametrize(
    ("topics", "mqtt"),
    [
        (["farm/#", "$share/relay/farm/#", "greenhouse/+/temp"], {}),
        (["farm_resilience/commands/#", "homeassistant"], {}),
        (["#"], {"topic_prefix": "$farm", "discovery_prefix": None}),
    ],
)
def test_topics_apart_from_the_agents_own_prefixes_are_valid(
    tmp_path: Path, topics: list[str], mqtt: dict[str, Any]
) -> None:
    config = valid_config()
    config["mqtt"].update(topics=topics, **mqtt)
    path = write_config(tmp_path / "agent.yaml", config)

    result = farm_agent("validate", "--config", str(path))

    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("first", "second", "overlap"),
    [
        ("#", "a/b", True),
        ("a/#", "a", True),
        ("a/+", "a", False),
        ("a/+/c", "a/b/+", True),
        ("a/+/c", "a/b/d", False),
        ("+/+", "a/b/c", False),
        ("+/+/#", "a/b", True),
        ("a//b", "a/+/b", True),
        ("#", "$SYS/x", False),
        ("+/x", "$SYS/x", False),
        ("$SYS/#", "$SYS/x", True),
        ("a/b", "a/b", True),
        ("a/b", "a/c", False),
    ],
)
def test_two_topic_filters_overlap_when_some_topic_matches_both(
    first: str, second: str, overlap: bool
) -> None:
    assert filters_overlap(first, second) is overlap
    assert filters_overlap(second, first) is overlap


def test_config_that_is_not_yaml_or_missing_exits_2(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("agent_id: [unclosed\n")

    not_yaml = farm_agent("validate", "--config", str(broken))
    missing = farm_agent("validate", "--config", str(tmp_path / "absent.yaml"))
    no_path = farm_agent("validate", env={"PATH": "/usr/bin:/bin"})

    assert not_yaml.returncode == 2
    assert "is not valid YAML" in not_yaml.stderr
    assert missing.returncode == 2
    assert "file not found" in missing.stderr
    assert no_path.returncode == 2
    assert "FARM_AGENT_CONFIG" in no_path.stderr


def test_environment_references_and_password_files_are_resolved(tmp_path: Path) -> None:
    (tmp_path / "mqtt-password").write_text(SECRET + "\n")
    config = valid_config()
    config["mqtt"].pop("password")
    config["mqtt"]["password_file"] = "mqtt-password"
    config["backend"]["direct_dsn"] = "postgresql://postgres:${FARM_TEST_DB_PASSWORD}@db:5432/x"
    path = write_config(tmp_path / "agent.yaml", config)

    result = farm_agent(
        "validate", "--config", str(path), env={"FARM_TEST_DB_PASSWORD": SECRET, "PATH": ""}
    )

    assert result.returncode == 0, result.stderr


def test_version_and_help_tell_the_truth() -> None:
    version = farm_agent("--version")
    top = farm_agent("--help")
    run = farm_agent("run", "--help")

    assert version.stdout.strip() == f"farm-agent {__version__}"
    for command in ("run", "validate"):
        assert command in top.stdout
    assert "--config" in run.stdout
    assert "FARM_AGENT_CONFIG" in run.stdout


def test_unusable_spool_file_is_a_clear_error_not_a_silent_reset(
    make_config: Callable[..., dict[str, Any]], tmp_path: Path
) -> None:
    config = make_config()
    spool = Path(config["spool"]["path"])
    spool.write_bytes(b"this is not an SQLite database, and it must not be overwritten" * 100)
    path = write_config(tmp_path / "agent.yaml", config)

    result = farm_agent("run", "--config", str(path))

    assert result.returncode == 1
    assert f"spool file {spool}" in result.stderr
    assert spool.read_bytes().startswith(b"this is not an SQLite database")


def test_spool_that_cannot_be_created_is_a_clear_error(
    make_config: Callable[..., dict[str, Any]], tmp_path: Path
) -> None:
    not_a_folder = tmp_path / "not-a-folder"
    not_a_folder.write_text("a file where the spool's folder should be")
    config = make_config(spool={"path": str(not_a_folder / "spool.db")})
    path = write_config(tmp_path / "agent.yaml", config)

    result = farm_agent("run", "--config", str(path))

    assert result.returncode == 1
    assert f"spool folder {not_a_folder} is not usable" in result.stderr
    assert "Traceback" not in result.stderr


async def test_sigterm_flushes_and_exits_0_within_10_s_and_the_next_run_finishes_the_work(
    make_config: Callable[..., dict[str, Any]],
    start_agent: Callable[..., AgentProcess],
    mosquitto: Mosquitto,
    postgres: Postgres,
    test_id: str,
) -> None:
    config = make_config(backend={"batch_interval_ms": 2000})
    agent = start_agent(config)
    topic = f"{test_id}/field1/rain/gauge"
    readings: list[tuple[str, bytes | str]] = [(topic, str(n)) for n in range(300)]
    with publisher(mosquitto.port, f"{test_id}-pub") as device:
        device.publish_all(readings)
        started = time.monotonic()
        exit_code = agent.terminate(timeout=15)
        took = time.monotonic() - started
        device.publish_all([(topic, "300")])

    assert exit_code == 0
    assert took < 10
    agent.start()
    messages = await wait_for_messages(postgres.dsn, config["backend"]["queue"], 301)
    assert [m["payload"] for m in messages] == list(range(301))
    assert "stopped;" in agent.log()


def test_config_example_in_the_repository_is_valid() -> None:
    example = REPO / "agent" / "packaging" / "agent.example.yaml"
    document = yaml.safe_load(example.read_text())

    without_env = farm_agent("validate", "--config", str(example), env={"PATH": ""})
    result = farm_agent(
        "validate",
        "--config",
        str(example),
        env={"SUPABASE_PROJECT_REF": "abcdefgh", "SUPABASE_DB_PASSWORD": SECRET, "PATH": ""},
    )

    assert without_env.returncode == 2
    assert "environment variable SUPABASE_PROJECT_REF is not set" in without_env.stderr
    assert result.returncode == 0, result.stderr
    assert SECRET not in result.stdout + result.stderr
    assert document["agent_id"] == "farm-east"
