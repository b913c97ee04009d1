"""The agent under test: its config, its process, its command line; what it shows is kept.

Every DSN and broker password of the tests carries TEST_SECRET (the throwaway servers
trust loopback and ignore it); everything the agent prints or serves joins
SEEN_OUTPUT, which is scanned for that secret at the end of the session.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tools import agent_process

REPO = agent_process.REPO
LOCAL_OBJECTIVES = ("database_availability", "api_availability", "error_rate")
TEST_SECRET = "Farm-Secret-d41d8c"
SEEN_OUTPUT: list[str] = []


def with_secret(dsn: str) -> str:
    """The same DSN with TEST_SECRET as its password."""
    scheme, rest = dsn.split("://", 1)
    user, host = rest.split("@", 1)
    return f"{scheme}://{user.split(':')[0]}:{TEST_SECRET}@{host}"


def agent_config(
    tmp_path: Path,
    *,
    agent_id: str,
    mqtt_port: int,
    pooler_dsn: str | None,
    direct_dsn: str | None,
    queue: str,
    topics: list[str] | None = None,
    **sections: dict[str, Any],
) -> dict[str, Any]:
    """A config document for one test: its own queues, spool and topics."""
    config: dict[str, Any] = {
        "agent_id": agent_id,
        "mqtt": {"host": "127.0.0.1", "port": mqtt_port, "topics": topics or [f"{agent_id}/#"]},
        "backend": {
            "pooler_dsn": pooler_dsn,
            "direct_dsn": direct_dsn,
            "queue": queue,
            "dead_letter_queue": f"{queue}_dlq",
            "batch_interval_ms": 50,
            "failback_interval_s": 1,
            "connect_timeout_s": 2,
        },
        "spool": {"path": str(tmp_path / f"{agent_id}-spool.db")},
        "http": {"listen": "127.0.0.1:0"},
        # An agent that manages its schema creates its task queues too: each test its own.
        "tasks": {"queue": f"{queue[:33]}_tk"},
        # The task objectives count every worker's figures in the database, which the
        # tests share: a test's agent judges its own probes only, unless it says otherwise.
        "slo": {"objectives": [{"name": name} for name in LOCAL_OBJECTIVES]},
        "log_level": "info",
    }
    for section, values in sections.items():
        if isinstance(config.get(section), dict):
            config[section].update(values)
        else:
            config[section] = values
    return config


def write_config(path: Path, config: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


class AgentProcess(agent_process.AgentProcess):
    """`farm-agent run` (or `work`) as a process (tools.agent_process); pages it serves are kept."""

    def get(self, path: str) -> tuple[int, str]:
        status, body = super().get(path)
        SEEN_OUTPUT.append(body)
        return status, body


def farm_agent_cli(
    *args: str,
    env: dict[str, str] | None = None,
    stdin: str | None = None,
    preexec_fn: Callable[[], object] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a `farm-agent` command to completion; its output joins SEEN_OUTPUT."""
    return _run_python(["-m", "farm_agent", *args], env=env, stdin=stdin, preexec_fn=preexec_fn)


def python_snippet(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run `python -c script args…` in the repository; its output joins SEEN_OUTPUT."""
    return _run_python(["-c", script, *args])


def _run_python(
    arguments: list[str],
    *,
    env: dict[str, str] | None = None,
    stdin: str | None = None,
    preexec_fn: Callable[[], object] | None = None,
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, *arguments],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        env=env,
        input=stdin,
        preexec_fn=preexec_fn,
        check=False,
    )
    SEEN_OUTPUT.extend((result.stdout, result.stderr))
    return result


@dataclass(frozen=True)
class CliResult:
    returncode: int
    stdout: str
    stderr: str


async def farm_agent(*args: str, stdin: str | None = None, timeout: float = 60) -> CliResult:
    """`farm-agent ...` as a process, awaited, so servers in this event loop keep answering."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "farm_agent",
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=REPO,
    )
    out, err = await asyncio.wait_for(
        process.communicate(stdin.encode() if stdin is not None else b""), timeout
    )
    result = CliResult(int(process.returncode or 0), out.decode(), err.decode())
    SEEN_OUTPUT.extend((result.stdout, result.stderr))
    return result
