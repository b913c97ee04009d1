"""Chaos: one long stream through every failure the farm will see, then a count.

Several publishers send tens of thousands of readings while the agent is SIGKILLed
20 times, Mosquitto and PostgreSQL restart, PgBouncer dies and returns, the link to
the database turns slow and lossy, and the database is away long enough to build a
large spool. At the end: every reading in the queue exactly once, in the order the
agent received them.
`make soak` runs the same with a 10-minute outage.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.e2e.faulty_network import FaultyProxy
from tests.support.agent import AgentProcess, with_secret
from tests.support.mqtt import StreamPublisher
from tests.support.queues import (
    assert_exactly_once,
    assert_relayed_in_received_order,
    wait_for_messages,
)
from tests.support.waiting import wait_until
from tools.services import Mosquitto, PgBouncer, Postgres


@dataclass(frozen=True)
class Plan:
    publishers: int
    rate_each: float
    seconds: float
    outage_s: float


SUITE = Plan(publishers=4, rate_each=100, seconds=150, outage_s=60)
SOAK = Plan(publishers=8, rate_each=100, seconds=780, outage_s=600)
PLAN = SOAK if os.environ.get("FARM_SOAK") else SUITE


@pytest.fixture
def proxies(pgbouncer: PgBouncer, postgres: Postgres) -> Iterator[tuple[FaultyProxy, FaultyProxy]]:
    """The agent's two routes to the database, through links that can be impaired."""
    to_pooler = FaultyProxy(pgbouncer.port).start()
    to_direct = FaultyProxy(postgres.port).start()
    yield to_pooler, to_direct
    to_pooler.close()
    to_direct.close()


def through(proxy: FaultyProxy, dsn: str) -> str:
    scheme, rest = with_secret(dsn).split("@", 1)
    return f"{scheme}@{proxy.dsn_host}/{rest.split('/', 1)[1]}"


def route(agent: AgentProcess) -> str:
    """The agent's route now; `unknown` while a restarted agent does not answer yet."""
    try:
        return agent.route()
    except (OSError, LookupError):
        return "unknown"


async def kill_and_restart(
    agent: AgentProcess, times: int, over_s: float, rng: random.Random
) -> None:
    for _ in range(times):
        await asyncio.sleep(rng.uniform(0.2, 2 * over_s / times - 0.2))
        agent.kill()
        await asyncio.sleep(rng.uniform(0.0, 0.5))
        agent.start()
        agent.wait_ready(30)


# The stream, then the drain and the count; the suite's run stays within the default.
@pytest.mark.timeout(600 if PLAN is SUITE else PLAN.seconds + 900)
async def test_chaos_run_delivers_every_reading_exactly_once_in_received_order(
    make_config: Callable[..., dict[str, Any]],
    start_agent: Callable[..., AgentProcess],
    mosquitto: Mosquitto,
    pgbouncer: PgBouncer,
    postgres: Postgres,
    proxies: tuple[FaultyProxy, FaultyProxy],
    test_id: str,
) -> None:
    to_pooler, to_direct = proxies
    config = make_config(
        pooler_dsn=through(to_pooler, pgbouncer.dsn),
        direct_dsn=through(to_direct, postgres.dsn),
        backend={"statement_timeout_s": 10, "connect_timeout_s": 3, "failback_interval_s": 1},
    )
    agent = start_agent(config)
    total_each = int(PLAN.rate_each * PLAN.seconds)
    streams = [
        StreamPublisher(
            mosquitto.port,
            f"{test_id}-pub{n}",
            [f"{test_id}/site{n}/sensor{k}/reading" for k in range(5)],
            total=total_each,
            rate=PLAN.rate_each,
            qos=2,  # exactly once from each device to the broker, so any duplicate is ours
        ).start()
        for n in range(PLAN.publishers)
    ]
    rng = random.Random(2026)
    started = time.monotonic()

    await kill_and_restart(agent, 10, 20, rng)
    mosquitto.restart()
    await asyncio.sleep(3)
    postgres.restart()
    await asyncio.sleep(3)
    pgbouncer.kill()
    await wait_until(lambda: route(agent) == "direct", "falling back to the direct route", 60)
    pgbouncer.start()
    await wait_until(lambda: route(agent) == "pooler", "failing back to the pooler", 60)
    for proxy in proxies:
        proxy.impair(latency_s=0.2, loss=0.05)
    await asyncio.sleep(15)
    for proxy in proxies:
        proxy.heal()
    postgres.stop()
    try:
        await asyncio.sleep(PLAN.outage_s)
    finally:
        postgres.start()
    remaining = max(5.0, PLAN.seconds - (time.monotonic() - started) - 3)
    await kill_and_restart(agent, 10, remaining, rng)
    for stream in streams:
        stream.join(timeout=PLAN.seconds + 300)
    sent = [reading for stream in streams for reading in stream.sent]

    messages = await wait_for_messages(
        postgres.dsn, config["backend"]["queue"], len(sent), timeout=300
    )

    assert agent.starts == 21
    assert len(sent) == PLAN.publishers * total_each
    # A paho publisher can reorder its own readings as the restarted broker comes back
    # (one published right at reconnect overtakes the queued ones), so the order that
    # counts is the order the agent received them in, and that must be the queue's.
    assert_exactly_once(sent, messages, publish_order=False)
    assert_relayed_in_received_order(messages)
    log = agent.log()
    assert "pooler -> direct" in log
    assert "direct -> pooler" in log
