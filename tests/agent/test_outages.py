"""Backend outages: the spool holds the readings, the route moves, nothing is lost."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from tests.support.agent import AgentProcess
from tests.support.metrics import metric_value
from tests.support.mqtt import StreamPublisher
from tests.support.queues import assert_exactly_once, wait_for_messages
from tests.support.waiting import wait_until
from tools.services import Mosquitto, PgBouncer, Postgres


async def test_database_stopped_for_30_s_spools_and_drains_everything_after_restart(
    make_config: Callable[..., dict[str, Any]],
    start_agent: Callable[..., AgentProcess],
    mosquitto: Mosquitto,
    postgres: Postgres,
    test_id: str,
) -> None:
    config = make_config()
    agent = start_agent(config)
    topics = [f"{test_id}/field{n}/air/humidity" for n in range(5)]
    stream = StreamPublisher(mosquitto.port, f"{test_id}-pub", topics, total=3500, rate=100)
    postgres.stop()
    try:
        stream.start()
        await asyncio.sleep(30)
        spooled = metric_value(agent.metrics(), "farm_agent_spool_depth")
    finally:
        postgres.start()
    stream.join()

    messages = await wait_for_messages(postgres.dsn, config["backend"]["queue"], len(stream.sent))

    assert spooled >= 2500, "readings published during the outage wait in the spool"
    assert_exactly_once(stream.sent, messages)
    await wait_until(
        lambda: metric_value(agent.metrics(), "farm_agent_spool_depth") == 0,
        "drained from the spool",
        10,
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
    assert agent.route() == "pooler"
    topics = [f"{test_id}/pump{n}/pressure" for n in range(3)]
    stream = StreamPublisher(mosquitto.port, f"{test_id}-pub", topics, total=3000, rate=300).start()
    await asyncio.sleep(2)
    pgbouncer.kill()
    try:
        await wait_until(lambda: agent.route() == "direct", "on the direct route", 30)
    finally:
        pgbouncer.start()
    await wait_until(lambda: agent.route() == "pooler", "back on the pooler", 30)
    stream.join()

    messages = await wait_for_messages(postgres.dsn, config["backend"]["queue"], len(stream.sent))

    assert_exactly_once(stream.sent, messages)
    page = agent.metrics()
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
    topics = [f"{test_id}/tank{n}/level" for n in range(2)]
    stream = StreamPublisher(mosquitto.port, f"{test_id}-pub", topics, total=600, rate=1000)
    postgres.stop()
    try:
        stream.start()
        stream.join()
        await wait_until(
            lambda: metric_value(agent.metrics(), "farm_agent_spool_backpressure") == 1,
            "reporting backpressure",
            10,
        )
        page = agent.metrics()
        await wait_until(
            lambda: "spool full" in " ".join(agent.problems()),
            "saying so in its health",
            10,
        )
    finally:
        postgres.start()

    messages = await wait_for_messages(postgres.dsn, config["backend"]["queue"], len(stream.sent))

    assert metric_value(page, "farm_agent_spool_depth") == 100
    assert "spool full" in agent.log()
    assert_exactly_once(stream.sent, messages)
    await wait_until(
        lambda: metric_value(agent.metrics(), "farm_agent_spool_backpressure") == 0,
        "relieved of backpressure",
        10,
    )
