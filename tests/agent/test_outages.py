"""Backend outages: the spool holds the readings, the route moves, nothing is lost."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

from tests.agent.support import (
    AgentProcess,
    StreamPublisher,
    assert_exactly_once,
    fetch,
    http_port,
    metric_value,
    wait_for_messages,
)
from tools.services import Mosquitto, PgBouncer, Postgres


def metrics_page(agent: AgentProcess) -> str:
    port = http_port(agent.log())
    assert port is not None, "the agent logs its HTTP port"
    status, page = fetch(f"http://127.0.0.1:{port}/metrics")
    assert status == 200
    return page


def health_report(agent: AgentProcess) -> dict[str, Any]:
    port = http_port(agent.log())
    assert port is not None
    status, body = fetch(f"http://127.0.0.1:{port}/health")
    return json.loads(body) if status == 200 else {"problems": []}


async def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"not {what} after {timeout} s")


async def test_database_stopped_for_30_s_spools_and_drains_everything_after_restart(
    make_config: Callable[..., dict[str, Any]],
    start_agent: Callable[..., AgentProcess],
    mosquitto: Mosquitto,
    postgres: Postgres,
    test_id: str,
) -> None:
    config = make_config()
    agent = start_agent(config)
    agent.wait_connected()
    topics = [f"{test_id}/field{n}/air/humidity" for n in range(5)]
    stream = StreamPublisher(mosquitto.port, f"{test_id}-pub", topics, total=3500, rate=100)
    postgres.stop()
    try:
        stream.start()
        await asyncio.sleep(30)
        spooled = metric_value(metrics_page(agent), "farm_agent_spool_depth")
    finally:
        postgres.start()
    stream.join()

    messages = await wait_for_messages(postgres.dsn, config["backend"]["queue"], len(stream.sent))

    assert spooled >= 2500, "readings published during the outage wait in the spool"
    assert_exactly_once(stream.sent, messages)
    await wait_until(
        lambda: metric_value(metrics_page(agent), "farm_agent_spool_depth") == 0,
        10,
        "drained from the spool",
    )


async def test_pooler_killed_midstream_switches_to_direct_and_back_losing_nothing(
    make_config: Callable[..., dict[str, Any]],
    start_agent: Callable[..., AgentProcess],
    mosquitto: Mosquitto,
    postgres: Postgres,
    pgbouncer: PgBouncer,
    test_id: str,
) -> None:
    config = make_config()
    agent = start_agent(config)
    agent.wait_connected()
    assert metric_value(metrics_page(agent), "farm_agent_backend_route", 'route="pooler"') == 1
    topics = [f"{test_id}/pump{n}/pressure" for n in range(3)]
    stream = StreamPublisher(mosquitto.port, f"{test_id}-pub", topics, total=3000, rate=300).start()
    await asyncio.sleep(2)
    pgbouncer.kill()
    try:
        await wait_until(
            lambda: (
                metric_value(metrics_page(agent), "farm_agent_backend_route", 'route="direct"') == 1
            ),
            30,
            "on the direct route",
        )
    finally:
        pgbouncer.start()
    await wait_until(
        lambda: (
            metric_value(metrics_page(agent), "farm_agent_backend_route", 'route="pooler"') == 1
        ),
        30,
        "back on the pooler",
    )
    stream.join()

    messages = await wait_for_messages(postgres.dsn, config["backend"]["queue"], len(stream.sent))

    assert_exactly_once(stream.sent, messages)
    page = metrics_page(agent)
    assert metric_value(page, "farm_agent_backend_fallbacks_total") == 1
    log = agent.log()
    assert "pooler -> direct" in log
    assert "direct -> pooler" in log


async def test_full_spool_stops_acking_and_the_broker_holds_the_rest_until_it_drains(
    make_config: Callable[..., dict[str, Any]],
    start_agent: Callable[..., AgentProcess],
    mosquitto: Mosquitto,
    postgres: Postgres,
    test_id: str,
) -> None:
    config = make_config(spool={"max_messages": 100}, probes={"interval_s": 0.5, "timeout_s": 2})
    agent = start_agent(config)
    agent.wait_connected()
    topics = [f"{test_id}/tank{n}/level" for n in range(2)]
    stream = StreamPublisher(mosquitto.port, f"{test_id}-pub", topics, total=600, rate=1000)
    postgres.stop()
    try:
        stream.start()
        stream.join()
        await wait_until(
            lambda: metric_value(metrics_page(agent), "farm_agent_spool_backpressure") == 1,
            10,
            "reporting backpressure",
        )
        page = metrics_page(agent)
        await wait_until(
            lambda: "spool full" in " ".join(health_report(agent)["problems"]),
            10,
            "saying so in its health",
        )
    finally:
        postgres.start()

    messages = await wait_for_messages(postgres.dsn, config["backend"]["queue"], len(stream.sent))

    assert metric_value(page, "farm_agent_spool_depth") == 100
    assert "spool full" in agent.log()
    assert_exactly_once(stream.sent, messages)
    await wait_until(
        lambda: metric_value(metrics_page(agent), "farm_agent_spool_backpressure") == 0,
        10,
        "relieved of backpressure",
    )
