"""Fixtures for the agent's tests: each test gets its own agent id, queue, topics and spool."""

from __future__ import annotations

import re
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.agent.support import (
    SEEN_OUTPUT,
    TEST_SECRET,
    AgentProcess,
    agent_config,
    with_secret,
    write_config,
)
from tools.services import Mosquitto, PgBouncer, Postgres


@pytest.fixture
def test_id(request: pytest.FixtureRequest) -> str:
    """A short id unique to the test, usable as agent id, queue name and topic root."""
    name = re.sub(r"[^a-z0-9]+", "_", request.node.name.lower()).strip("_")
    return f"t{zlib.crc32(request.node.nodeid.encode()) % 10**8}_{name[:24]}".rstrip("_")


@pytest.fixture(autouse=True)
def services_serving(postgres: Postgres, pgbouncer: PgBouncer, mosquitto: Mosquitto) -> None:
    """Each test starts with every shared service up and serving, whatever the last one did."""
    for service in (postgres, pgbouncer, mosquitto):
        if not service.running:
            service.start()
    pgbouncer.wait_serving()


@pytest.fixture
def make_config(
    tmp_path: Path,
    test_id: str,
    mosquitto: Mosquitto,
    pgbouncer: PgBouncer,
    postgres: Postgres,
) -> Callable[..., dict[str, Any]]:
    """A config for this test's agent; keyword sections override or extend the defaults."""

    def make(**overrides: Any) -> dict[str, Any]:
        agent_id = overrides.pop("agent_id", test_id.replace("_", "-")[:64])
        return agent_config(
            tmp_path,
            agent_id=agent_id,
            mqtt_port=overrides.pop("mqtt_port", mosquitto.port),
            pooler_dsn=overrides.pop("pooler_dsn", with_secret(pgbouncer.dsn)),
            direct_dsn=overrides.pop("direct_dsn", with_secret(postgres.dsn)),
            queue=overrides.pop("queue", test_id[:40]),
            topics=overrides.pop("topics", [f"{test_id}/#"]),
            **overrides,
        )

    return make


@pytest.fixture
def start_agent(tmp_path: Path) -> Iterator[Callable[..., AgentProcess]]:
    """Start `farm-agent run` processes; every one is stopped after the test."""
    started: list[AgentProcess] = []

    def start(config: dict[str, Any], env: dict[str, str] | None = None) -> AgentProcess:
        path = write_config(tmp_path / f"{config['agent_id']}.yaml", config)
        agent = AgentProcess(path, env)
        started.append(agent)
        agent.start()
        return agent

    yield start
    for agent in started:
        agent.stop()


@pytest.fixture(scope="session", autouse=True)
def no_secret_ever_shown(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """After the session: no log, CLI output, health payload or metrics page shows a secret."""
    yield
    leaks = [f"output #{index}" for index, text in enumerate(SEEN_OUTPUT) if TEST_SECRET in text]
    for path in tmp_path_factory.getbasetemp().rglob("*"):
        # Config and password files are where the secrets belong.
        if not path.is_file() or path.suffix in {".yaml", ".db", ".db-wal", ".db-shm"}:
            continue
        if "password" in path.name or path.suffix in {".key", ".crt", ".csr", ".srl"}:
            continue
        if TEST_SECRET.encode() in path.read_bytes():
            leaks.append(str(path))
    if leaks:
        pytest.fail(f"a test secret was shown in: {', '.join(leaks[:10])}")
