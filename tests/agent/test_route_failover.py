"""The route leaves a pooler that gives no working session, whatever the reason, busy or idle."""

from __future__ import annotations

import asyncio
import struct
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from farm_agent.topics import health_topic
from tests.support.agent import TEST_SECRET, AgentProcess
from tests.support.mqtt import Watcher, publisher
from tests.support.queues import wait_for_messages
from tools.services import Mosquitto, PgBouncer, Postgres, Services

ConfigMaker = Callable[..., dict[str, Any]]
SSL_REQUEST = 80877103


class RefusingPooler:
    """Refuses every login the way Supavisor does for an unknown tenant: FATAL, XX000.

    Speaks just enough of the PostgreSQL protocol: declines TLS, reads the startup
    message, answers with an ErrorResponse and hangs up.
    """

    def __init__(self, sqlstate: str, message: str) -> None:
        self.sqlstate = sqlstate
        self.message = message
        self.refused = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._refuse, "127.0.0.1", 0)
        return int(self._server.sockets[0].getsockname()[1])

    async def _refuse(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                length, code = struct.unpack("!II", await reader.readexactly(8))
                await reader.readexactly(length - 8)
                if code != SSL_REQUEST:
                    break
                writer.write(b"N")
            fields = b"".join(
                kind + text.encode() + b"\0"
                for kind, text in (
                    (b"S", "FATAL"),
                    (b"V", "FATAL"),
                    (b"C", self.sqlstate),
                    (b"M", self.message),
                )
            )
            body = fields + b"\0"
            writer.write(b"E" + struct.pack("!I", len(body) + 4) + body)
            await writer.drain()
            self.refused += 1
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


@pytest.fixture(
    params=["supavisor_unknown_tenant", "postgres_unknown_role", "pgbouncer_wrong_password"]
)
async def refusing_pooler_dsn(
    request: pytest.FixtureRequest, services: Services, postgres: Postgres
) -> AsyncIterator[str]:
    """A pooler DSN whose login is refused; the direct route works all along."""
    if request.param == "supavisor_unknown_tenant":
        pooler = RefusingPooler("XX000", "Tenant or user not found")
        port = await pooler.start()
        yield f"postgresql://postgres.farmref:{TEST_SECRET}@127.0.0.1:{port}/postgres"
        await pooler.close()
    elif request.param == "postgres_unknown_role":
        yield f"postgresql://nobody:{TEST_SECRET}@127.0.0.1:{postgres.port}/farm"
    else:
        # A PgBouncer checking passwords (md5) that has not picked up the new one.
        bouncer = services.pgbouncer_with_password("the-old-password", name="pgbouncer-md5")
        yield f"postgresql://postgres:{TEST_SECRET}@127.0.0.1:{bouncer.port}/farm"
        bouncer.stop()


async def wait_subscribed(agent: AgentProcess, timeout: float = 20) -> None:
    """Until the broker accepted the agent's readings subscription (its SUBACK is logged)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ": subscribed to " in agent.log():
            return
        assert agent.running, agent.log()[-3000:]
        await asyncio.sleep(0.05)
    raise AssertionError(f"agent not subscribed after {timeout} s: {agent.log()[-3000:]}")


async def test_a_pooler_refusing_the_login_fails_over_and_readings_flow_over_direct(
    make_config: ConfigMaker,
    start_agent: Callable[..., AgentProcess],
    mosquitto: Mosquitto,
    postgres: Postgres,
    refusing_pooler_dsn: str,
    test_id: str,
) -> None:
    config = make_config(pooler_dsn=refusing_pooler_dsn)
    agent = start_agent(config, ready=False)
    await wait_subscribed(agent)

    with publisher(mosquitto.port, f"{test_id}-pub") as device:
        device.publish_all([(f"{test_id}/tank/level", str(level)) for level in (71, 70, 69)])
    relayed = await wait_for_messages(postgres.dsn, config["backend"]["queue"], 3, timeout=20)

    assert [message["payload"] for message in relayed] == [71, 70, 69]
    log = agent.log()
    assert "pooler -> direct" in log
    assert TEST_SECRET not in log


async def test_an_idle_agent_leaves_a_dead_pooler_and_returns_when_it_is_back(
    make_config: ConfigMaker,
    start_agent: Callable[..., AgentProcess],
    watch: Callable[..., Watcher],
    mosquitto: Mosquitto,
    postgres: Postgres,
    pgbouncer: PgBouncer,
    test_id: str,
) -> None:
    config = make_config(probes={"interval_s": 0.5, "timeout_s": 2})
    topic = health_topic("farm_resilience", config["agent_id"])
    watcher = watch(topic)
    agent = start_agent(config)
    await watcher.wait_for_health(topic, lambda h: h["backend"]["route"] == "pooler")

    pgbouncer.kill()
    try:
        # No reading flows: only the health probes can notice.
        moved = await watcher.wait_for_health(
            topic, lambda h: h["backend"]["route"] == "direct", timeout=15
        )
        with publisher(mosquitto.port, f"{test_id}-pub") as device:
            device.publish_all([(f"{test_id}/silo/temp", "12.5")])
        relayed = await wait_for_messages(postgres.dsn, config["backend"]["queue"], 1, timeout=10)
    finally:
        pgbouncer.start()
    watcher.clear()
    back = await watcher.wait_for_health(
        topic, lambda h: h["backend"]["route"] == "pooler", timeout=20
    )

    assert moved["backend"]["fallbacks_total"] == 1
    assert [message["payload"] for message in relayed] == [12.5]
    assert back["backend"]["fallbacks_total"] == 1
    assert "direct -> pooler" in agent.log()
