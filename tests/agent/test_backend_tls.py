"""TLS to the database: verified with backend.tls.ca_file, never a silent plaintext fallback."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from farm_agent.config import BackendTlsConfig, ConfigError
from farm_agent.config_file import parse_config
from farm_agent.database import choose_tls, tls_warning
from farm_agent.health.probes.postgres import probe_route
from farm_agent.tasks import submit
from tests.agent.support import running_worker, task_type, tasks_section
from tests.support.agent import TEST_SECRET, AgentProcess, farm_agent, with_secret, write_config
from tests.support.mqtt import publisher
from tests.support.queues import create_queues, queue_rows, wait_for_messages
from tests.support.waiting import wait_until
from tools.services import Certificates, Mosquitto, Postgres, Services, make_certificates

ConfigMaker = Callable[..., dict[str, Any]]
NO_TLS = BackendTlsConfig(ca_file=None, mode=None)
REMOTE = "postgresql://postgres:pw@db.example.supabase.co:5432/postgres"
LOOPBACK = "postgresql://postgres:pw@127.0.0.1:5432/postgres"


@pytest.fixture(scope="module")
def tls_postgres(services: Services) -> Iterator[tuple[Postgres, Certificates]]:
    """A PostgreSQL of its own serving a certificate of a throwaway CA."""
    server, certificates = services.postgres_with_tls()
    yield server, certificates
    server.stop()


@pytest.fixture
def other_ca(tmp_path: Path) -> Path:
    """A CA that signed nothing the servers use."""
    folder = tmp_path / "other-ca"
    folder.mkdir()
    return make_certificates(folder).ca_file


def tls_config(
    make_config: ConfigMaker, server: Postgres, mode: str | None, ca_file: Path | None
) -> dict[str, Any]:
    """Both routes to `server`, with backend.tls as given."""
    dsn = with_secret(server.dsn)
    config = make_config(pooler_dsn=None, direct_dsn=dsn)
    config["backend"]["tls"] = {"mode": mode, "ca_file": None if ca_file is None else str(ca_file)}
    return config


# The decision, for every kind of host and setting ----------------------------------


@pytest.mark.parametrize(
    ("dsn", "tls", "mode", "verified"),
    [
        (REMOTE, NO_TLS, "require", False),
        (REMOTE, BackendTlsConfig("/etc/ca.crt", None), "verify-full", True),
        (REMOTE, BackendTlsConfig("/etc/ca.crt", "verify-ca"), "verify-ca", True),
        (LOOPBACK, NO_TLS, "prefer", False),
        ("postgresql://u@localhost/db", NO_TLS, "prefer", False),
        ("postgresql://u@[::1]:5432/db", NO_TLS, "prefer", False),
        (LOOPBACK, BackendTlsConfig(None, "verify-full"), "verify-full", True),
        (f"{REMOTE}?sslmode=disable", BackendTlsConfig("/etc/ca.crt", None), "disable", False),
        (f"{REMOTE}?sslmode=verify-full", NO_TLS, "verify-full", True),
    ],
)
def test_remote_hosts_need_tls_verified_with_the_ca_file_and_loopback_keeps_working(
    dsn: str, tls: BackendTlsConfig, mode: str, verified: bool
) -> None:
    choice = choose_tls(dsn, tls)

    assert (choice.mode, choice.verified) == (mode, verified)
    assert choice.encrypted or choice.loopback or "sslmode" in dsn, "no plaintext fallback"


def test_an_unverified_remote_route_is_a_problem_naming_backend_tls_ca_file() -> None:
    assert "backend.tls.ca_file" in (tls_warning("pooler", REMOTE, NO_TLS) or "")
    plaintext = tls_warning("direct", f"{REMOTE}?sslmode=prefer", NO_TLS)
    assert "plaintext" in (plaintext or "")
    assert tls_warning("pooler", REMOTE, BackendTlsConfig("/etc/ca.crt", None)) is None
    assert tls_warning("pooler", LOOPBACK, NO_TLS) is None


def test_a_missing_ca_file_or_a_bad_mode_is_a_config_error_naming_the_key(
    make_config: ConfigMaker, tmp_path: Path
) -> None:
    config = make_config()
    config["backend"]["tls"] = {"ca_file": "missing-ca.crt"}
    with pytest.raises(ConfigError, match=r"^backend\.tls\.ca_file: cannot read"):
        parse_config(config, base_dir=tmp_path)
    config["backend"]["tls"] = {"mode": "prefer"}
    with pytest.raises(ConfigError, match=r"^backend\.tls\.mode: .*plaintext"):
        parse_config(config)
    config["backend"]["tls"] = None
    config["backend"]["direct_dsn"] += "?sslmode=verify_full"
    with pytest.raises(ConfigError, match=r"^backend\.direct_dsn: has sslmode=verify_full"):
        parse_config(config)


# On a real PostgreSQL serving TLS -------------------------------------------------


async def test_verify_full_with_the_servers_ca_connects_for_the_relay_the_probes_and_queue(
    make_config: ConfigMaker,
    start_agent: Callable[..., AgentProcess],
    tls_postgres: tuple[Postgres, Certificates],
    mosquitto: Mosquitto,
    tmp_path: Path,
    test_id: str,
) -> None:
    server, certificates = tls_postgres
    config = tls_config(make_config, server, "verify-full", certificates.ca_file)
    parsed = parse_config(config)

    probed = await probe_route("direct", parsed.backend, 5)
    agent = start_agent(config)
    with publisher(mosquitto.port, f"{test_id}-pub") as device:
        device.publish_all([(f"{test_id}/barn/temp", "21.5")])
    relayed = await wait_for_messages(server.dsn, parsed.backend.queue, 1)
    path = write_config(tmp_path / "queue.yaml", config)
    stats = await farm_agent("queue", "stats", "--config", str(path), "--json")

    assert probed.ok, probed.detail
    assert [message["payload"] for message in relayed] == [21.5]
    assert stats.returncode == 0, stats.stderr
    assert json.loads(stats.stdout)["queue"]["depth"] == 1
    assert "backend TLS" not in agent.log(), "a verified route is nothing to warn about"


async def test_a_certificate_from_another_ca_is_refused_with_a_clear_error(
    make_config: ConfigMaker,
    tls_postgres: tuple[Postgres, Certificates],
    other_ca: Path,
    tmp_path: Path,
) -> None:
    server, _ = tls_postgres
    config = tls_config(make_config, server, "verify-full", other_ca)

    probed = await probe_route("direct", parse_config(config).backend, 5)
    path = write_config(tmp_path / "queue.yaml", config)
    stats = await farm_agent("queue", "stats", "--config", str(path))

    assert not probed.ok
    assert "server certificate not trusted" in probed.detail
    assert str(other_ca) in probed.detail
    assert stats.returncode == 1
    assert "server certificate not trusted" in stats.stderr
    assert TEST_SECRET not in stats.stderr + probed.detail


async def test_a_server_without_tls_is_refused_not_used_in_plaintext(
    make_config: ConfigMaker, postgres: Postgres, tls_postgres: tuple[Postgres, Certificates]
) -> None:
    _, certificates = tls_postgres
    config = tls_config(make_config, postgres, "verify-full", certificates.ca_file)

    probed = await probe_route("direct", parse_config(config).backend, 5)

    assert not probed.ok
    assert "server does not offer TLS" in probed.detail


async def test_check_lists_an_unverified_server_as_a_problem_naming_backend_tls_ca_file(
    make_config: ConfigMaker,
    start_agent: Callable[..., AgentProcess],
    tls_postgres: tuple[Postgres, Certificates],
    tmp_path: Path,
) -> None:
    server, _ = tls_postgres
    config = tls_config(make_config, server, "require", None)
    await create_queues(server.dsn, config["backend"]["queue"], config["backend"]["queue"] + "_dlq")
    path = write_config(tmp_path / "check.yaml", config)

    checked = await farm_agent("check", "--config", str(path), "--json")
    agent = start_agent(config)

    health = json.loads(checked.stdout)
    assert checked.returncode == 1, checked.stderr
    assert health["status"] == "degraded"
    [problem] = health["problems"]
    assert "direct server not verified" in problem
    assert "backend.tls.ca_file" in problem
    assert [probe["ok"] for probe in health["probes"] if probe["kind"] == "postgres"] == [True]
    warnings = [line for line in agent.log().splitlines() if "backend TLS" in line]
    assert len(warnings) == 1, "said once, at start"
    assert "backend.tls.ca_file" in warnings[0]


async def test_the_task_worker_verifies_the_server_as_the_relay_does(
    make_config: ConfigMaker,
    tls_postgres: tuple[Postgres, Certificates],
    other_ca: Path,
    test_id: str,
) -> None:
    server, certificates = tls_postgres
    kind = task_type(test_id, "noop")
    trusted = tls_config(make_config, server, "verify-full", certificates.ca_file)
    trusted["tasks"] = tasks_section(test_id, {kind: "noop"})
    untrusted = {**trusted, "backend": {**trusted["backend"], "tls": {"mode": "verify-full"}}}
    untrusted["backend"]["tls"]["ca_file"] = str(other_ca)
    queue = trusted["tasks"]["queue"]

    refused_id = await submit(server.dsn, kind, {"n": 1}, queue=queue)
    async with running_worker(parse_config(untrusted)):
        await asyncio.sleep(3)
    waiting = await queue_rows(server.dsn, f"{queue}_normal")
    async with running_worker(parse_config(trusted)):
        archived = await wait_until(
            lambda: queue_rows(server.dsn, f"{queue}_normal", "a"), "the task archived"
        )

    assert [row["message"]["id"] for row in waiting] == [refused_id]
    assert [row["message"]["id"] for row in archived] == [refused_id]
