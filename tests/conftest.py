"""Shared fixtures: the throwaway real services every part of the suite runs against,
and the agent on them (its config, its processes, the scan for a shown secret).
"""

from __future__ import annotations

import re
import signal
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

# Imported here, near the bottom of the stack: Python 3.11.7 can fail to compile
# hypothesis when pytest first imports it deep inside its session-finish hooks.
import hypothesis  # noqa: F401
import pytest

# pytest-homeassistant-custom-component puts its own `custom_components` package
# on the path; importing ours first makes the loader find farm_resilience.
import custom_components  # noqa: F401
from tests.support.agent import (
    SEEN_OUTPUT,
    TEST_SECRET,
    AgentProcess,
    agent_config,
    with_secret,
    write_config,
)
from tools.services import Mosquitto, PgBouncer, Postgres, Services

# A SIGTERMed test run unwinds like Ctrl-C, so the fixtures still stop their services.
signal.signal(signal.SIGTERM, signal.default_int_handler)


@pytest.fixture(scope="session")
def services() -> Iterator[Services]:
    """One folder of throwaway services for the session; nothing is left behind."""
    running = Services()
    try:
        yield running
    finally:
        running.close()


@pytest.fixture(scope="session")
def postgres(services: Services) -> Postgres:
    """PostgreSQL 15 with PGMQ, shared by the session. Tests that stop it must start it again."""
    return services.postgres


@pytest.fixture(scope="session")
def pgbouncer(services: Services) -> PgBouncer:
    """PgBouncer in transaction mode in front of `postgres`: the stand-in for Supavisor."""
    return services.pgbouncer


@pytest.fixture(scope="session")
def mosquitto(services: Services) -> Mosquitto:
    """A Mosquitto broker shared by the session."""
    return services.mosquitto()


# The agent on those services: a folder's conftest makes `serving` and
# `no_secret_ever_shown` autouse where its tests run the agent.


@pytest.fixture
def serving(postgres: Postgres, pgbouncer: PgBouncer, mosquitto: Mosquitto) -> None:
    """Every shared service up and serving, whatever the test before did to it."""
    for service in (postgres, pgbouncer, mosquitto):
        if not service.running:
            service.start()
    pgbouncer.wait_serving()


@pytest.fixture(scope="session")
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


@pytest.fixture
def test_id(request: pytest.FixtureRequest) -> str:
    """A short id unique to the test, usable as agent id, queue name and topic root."""
    name = re.sub(r"[^a-z0-9]+", "_", request.node.name.lower()).strip("_")
    return f"t{zlib.crc32(request.node.nodeid.encode()) % 10**8}_{name[:24]}".rstrip("_")


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
    """Start `farm-agent run` (or `work`) processes; every one is stopped after the test.

    `start_agent(config)` returns once the process is ready (/readyz); `ready=False`
    returns at once, for an agent that is not meant to be ready.
    """
    started: list[AgentProcess] = []

    def start(
        config: dict[str, Any],
        env: dict[str, str] | None = None,
        *,
        ready: bool = True,
        command: str = "run",
        name: str | None = None,
    ) -> AgentProcess:
        path = write_config(tmp_path / f"{name or config['agent_id']}.yaml", config)
        agent = AgentProcess(path, env, command=command)
        started.append(agent)
        agent.start()
        if ready:
            agent.wait_ready()
        return agent

    yield start
    for agent in started:
        agent.stop()
