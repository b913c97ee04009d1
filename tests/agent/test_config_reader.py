"""The daemons read their config in a child process: same config, same errors, nothing lost."""

from __future__ import annotations

import datetime
import json
import signal
from pathlib import Path
from typing import Any

import pytest

from tests.support.agent import TEST_SECRET, farm_agent_cli, python_snippet, write_config

# Both ways of reading `sys.argv[1]`, compared: the child's JSON document against the
# frozen config read in-process (dataclass equality, every field down to the paths).
COMPARE = """
import json, sys
from farm_agent.config_file import load_config
from farm_agent.config_reader import read_config

in_process, via_child = load_config(sys.argv[1]), read_config(sys.argv[1])
print(json.dumps({"equal": in_process == via_child, "loaded": sorted(
    name for name in ("yaml", "voluptuous", "farm_agent.config_file") if name in sys.modules
)}))
"""

# What a daemon's process imports to read its config (no in-process load first).
ONLY_THE_CHILD = """
import json, sys
from farm_agent.config_reader import read_config

config = read_config(sys.argv[1])
print(json.dumps({"agent_id": config.agent_id, "password": config.mqtt.password == sys.argv[2],
    "loaded": sorted(name for name in ("yaml", "voluptuous", "farm_agent.config_file")
    if name in sys.modules)}))
"""

# A bug in reading (not a bad config): the child's traceback, and the parent does not start.
A_BUG_IN_THE_CHILD = """
import sys
import farm_agent.config_file as config_file
from farm_agent.config_reader import ConfigReaderError, read_config

def broken(path):
    raise ZeroDivisionError("a bug in the schema")

config_file.read_document = broken
try:
    read_config(sys.argv[1])
except ConfigReaderError as err:
    print(f"refused: {err}")
"""


# The child killed before it answers (as the OOM killer would): no traceback to point at.
A_KILLED_CHILD = """
import os, signal, sys
import farm_agent.config_file as config_file
from farm_agent.config_reader import ConfigReaderError, read_config

config_file.read_document = lambda path: os.kill(os.getpid(), signal.SIGKILL)
try:
    read_config(sys.argv[1])
except ConfigReaderError as err:
    print(f"refused: {err}")
"""

# A launcher that left SIGCHLD ignored: the kernel reaps the child, waitpid cannot.
SIGCHLD_IGNORED = """
import signal, sys
signal.signal(signal.SIGCHLD, signal.SIG_IGN)
from farm_agent.config_reader import read_config

print(read_config(sys.argv[1]).agent_id)
"""


def every_section(folder: Path) -> dict[str, Any]:
    """A config that sets a value in every section, with files relative to its folder."""
    (folder / "mqtt-password").write_text(TEST_SECRET + "\n")
    (folder / "ca.pem").write_text("not checked here\n")
    return {
        "agent_id": "farm-east",
        "log_level": "DEBUG",
        "mqtt": {
            "host": "broker.farm",
            "port": 8883,
            "username": "farm",
            "password_file": "mqtt-password",
            "topics": ["farm/#", "$share/relay/barn/+"],
            "receive_maximum": 50,
        },
        "backend": {
            "pooler_dsn": f"postgresql://postgres.ref:{TEST_SECRET}@pooler.example:6543/postgres",
            "direct_dsn": f"postgresql://postgres:{TEST_SECRET}@db.example:5432/postgres",
            "queue": "barn_readings",
            "batch_size": 250,
            "tls": {"ca_file": "ca.pem", "mode": "verify-full"},
        },
        "spool": {"path": "spool/agent.db"},
        "probes": {
            "interval_s": 15,
            "thresholds": {"processing_s": 12.5},
            "http": [
                {
                    "name": "api",
                    "url": "https://api.farm.example/health",
                    "expect_cache": True,
                    "invalidate": {
                        "method": "post",
                        "url": "https://api.farm.example/write",
                        "body": {"at": "{nonce}", "weights": [1, 2.5, None, True]},
                    },
                }
            ],
        },
        "http": {"listen": "[::1]:9200"},
        "tasks": {
            "queue": "barn_tasks",
            "concurrency": 3,
            "timeouts": {"generate_report": 120},
            "handlers": {"generate_report": "tests.agent.task_handlers:succeed"},
            "backoff": {"base_s": 2, "max_s": 60},
        },
        "slo": {"window_days": 7, "objectives": [{"name": "error_rate", "target_pct": 98.5}]},
        "home_assistant": {"url": "http://ha.farm:8123", "token": TEST_SECRET},
    }


def test_the_config_read_in_a_child_is_the_config_read_in_process(tmp_path: Path) -> None:
    path = write_config(tmp_path / "agent.yaml", every_section(tmp_path))

    compared = python_snippet(COMPARE, str(path))

    assert compared.returncode == 0, compared.stderr
    assert json.loads(compared.stdout)["equal"] is True


def test_a_daemon_reading_its_config_never_loads_yaml_or_the_schema(tmp_path: Path) -> None:
    path = write_config(tmp_path / "agent.yaml", every_section(tmp_path))

    read = python_snippet(ONLY_THE_CHILD, str(path), TEST_SECRET)

    assert read.returncode == 0, read.stderr
    assert json.loads(read.stdout) == {"agent_id": "farm-east", "password": True, "loaded": []}
    assert TEST_SECRET not in read.stdout + read.stderr


@pytest.mark.parametrize("command", ["run", "work"])
@pytest.mark.parametrize(
    ("change", "named"),
    [
        (lambda c: c["mqtt"].update(hostt="x"), "mqtt.hostt: unknown key"),
        (lambda c: c["mqtt"].update(password_file="/nowhere/pw"), "mqtt.password_file: cannot"),
        (
            lambda c: c["backend"].update(direct_dsn=f"postgresql://u:{TEST_SECRET}@:5432/db"),
            "backend.direct_dsn: has no host",
        ),
    ],
)
def test_a_daemon_with_a_bad_config_exits_2_naming_the_key_and_never_the_secret(
    tmp_path: Path, command: str, change: Any, named: str
) -> None:
    config = every_section(tmp_path)
    change(config)
    path = write_config(tmp_path / "agent.yaml", config)

    result = farm_agent_cli(command, "--config", str(path))

    assert result.returncode == 2
    assert f"farm-agent: config error: {named}" in result.stderr
    assert TEST_SECRET not in result.stdout + result.stderr
    assert "Traceback" not in result.stderr


def test_a_daemon_with_a_missing_config_file_exits_2(tmp_path: Path) -> None:
    result = farm_agent_cli("run", "--config", str(tmp_path / "absent.yaml"))

    assert result.returncode == 2
    assert "absent.yaml: file not found" in result.stderr


def test_a_bug_while_reading_shows_its_traceback_and_the_daemon_does_not_start(
    tmp_path: Path,
) -> None:
    path = write_config(tmp_path / "agent.yaml", every_section(tmp_path))

    result = python_snippet(A_BUG_IN_THE_CHILD, str(path))

    assert result.returncode == 0, result.stderr
    assert "ZeroDivisionError: a bug in the schema" in result.stderr
    assert result.stdout.startswith("refused: reading the config failed in its child process")


def test_an_invalidation_body_json_cannot_carry_is_refused_at_start(tmp_path: Path) -> None:
    config = every_section(tmp_path)
    config["probes"]["http"][0]["invalidate"]["body"] = {"at": datetime.date(2026, 12, 2)}
    path = write_config(tmp_path / "agent.yaml", config)

    result = farm_agent_cli("validate", "--config", str(path))

    assert result.returncode == 2
    assert "probes.http.0.invalidate.body: must be text or JSON" in result.stderr


def test_a_killed_child_is_named_as_killed(tmp_path: Path) -> None:
    path = write_config(tmp_path / "agent.yaml", every_section(tmp_path))

    result = python_snippet(A_KILLED_CHILD, str(path))

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        "refused: reading the config failed in its child process: it was killed by SIGKILL"
    )


def test_a_daemon_started_with_sigchld_ignored_still_reads_its_config(tmp_path: Path) -> None:
    config = every_section(tmp_path)
    good = write_config(tmp_path / "agent.yaml", config)
    config["mqtt"]["hostt"] = "x"
    bad = write_config(tmp_path / "bad.yaml", config)

    read = python_snippet(SIGCHLD_IGNORED, str(good))
    refused = farm_agent_cli(
        "run",
        "--config",
        str(bad),
        preexec_fn=lambda: signal.signal(signal.SIGCHLD, signal.SIG_IGN),
    )

    assert read.returncode == 0, read.stderr
    assert read.stdout.strip() == "farm-east"
    assert refused.returncode == 2, refused.stderr
    assert "farm-agent: config error: mqtt.hostt: unknown key" in refused.stderr
