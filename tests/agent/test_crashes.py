"""Crashes anywhere on the delivery path lose nothing and duplicate nothing."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from typing import Any

from tests.support.agent import AgentProcess
from tests.support.metrics import metric_value
from tests.support.mqtt import StreamPublisher, publisher
from tests.support.queues import assert_exactly_once, wait_for_messages
from tests.support.waiting import wait_until
from tools.services import Mosquitto, Postgres


async def test_agent_sigkilled_repeatedly_mid_stream_loses_and_duplicates_nothing(
    make_config: Callable[..., dict[str, Any]],
    start_agent: Callable[..., AgentProcess],
    mosquitto: Mosquitto,
    postgres: Postgres,
    test_id: str,
) -> None:
    config = make_config()
    agent = start_agent(config)
    topics = [f"{test_id}/field{n}/soil/moisture" for n in range(4)]
    stream = StreamPublisher(mosquitto.port, f"{test_id}-pub", topics, total=4000, rate=800).start()
    rng = random.Random(7)
    for _ in range(5):
        await asyncio.sleep(rng.uniform(0.2, 0.8))
        agent.kill()
        await asyncio.sleep(rng.uniform(0.0, 0.3))
        agent.start()
        agent.wait_ready()
    stream.join()

    messages = await wait_for_messages(postgres.dsn, config["backend"]["queue"], len(stream.sent))

    assert_exactly_once(stream.sent, messages)
    assert agent.starts == 6


async def test_crash_between_spool_commit_and_puback_does_not_duplicate_the_redelivery(
    make_config: Callable[..., dict[str, Any]],
    start_agent: Callable[..., AgentProcess],
    mosquitto: Mosquitto,
    postgres: Postgres,
    test_id: str,
) -> None:
    config = make_config()
    # The first spool commit kills the agent before any PUBACK leaves: the broker
    # still owes every one of these readings and redelivers them with DUP set.
    agent = start_agent(config, env={"FARM_AGENT_FAILPOINTS": "after_spool_commit=1"})
    topic = f"{test_id}/greenhouse/air/temperature"
    readings: list[tuple[str, bytes | str]] = [(topic, "21.5"), (topic, "21.5")]
    readings += [(topic, str(22 + n / 10)) for n in range(20)]
    with publisher(mosquitto.port, f"{test_id}-pub") as device:
        device.publish_all(readings)
    assert agent.wait_exit(10) == -9, "the failpoint should have killed the agent"

    agent.env.pop("FARM_AGENT_FAILPOINTS", None)
    agent.start()
    agent.wait_ready()
    messages = await wait_for_messages(postgres.dsn, config["backend"]["queue"], len(readings))

    assert [m["payload"] for m in messages] == [float(payload) for _, payload in readings]
    # The spooled readings may be relayed before the redeliveries' commit window ends.
    await wait_until(
        lambda: metric_value(agent.metrics(), "farm_agent_mqtt_redeliveries_total") > 0,
        "the broker's redeliveries recognised as readings already on disk",
    )
    # ...and recognised, never stored again: still each reading once.
    messages = await wait_for_messages(postgres.dsn, config["backend"]["queue"], len(readings))
    assert [m["payload"] for m in messages] == [float(payload) for _, payload in readings]


async def test_crash_between_queue_commit_and_spool_delete_is_suppressed_by_the_mark(
    make_config: Callable[..., dict[str, Any]],
    start_agent: Callable[..., AgentProcess],
    mosquitto: Mosquitto,
    postgres: Postgres,
    test_id: str,
) -> None:
    config = make_config()
    agent = start_agent(config, env={"FARM_AGENT_FAILPOINTS": "after_queue_commit=1"})
    topic = f"{test_id}/field1/soil/moisture"
    readings: list[tuple[str, bytes | str]] = [(topic, str(30 + n)) for n in range(50)]
    with publisher(mosquitto.port, f"{test_id}-pub") as device:
        device.publish_all(readings)
    assert agent.wait_exit(10) == -9, "the failpoint should have killed the agent"
    committed = await wait_for_messages(postgres.dsn, config["backend"]["queue"], 1, timeout=5)
    assert committed, "the batch should be in the queue although the spool still holds it"

    agent.env.pop("FARM_AGENT_FAILPOINTS", None)
    agent.start()
    agent.wait_ready()
    # Once the spool is empty, every reading it held (the committed batch again too) has
    # been forwarded: what the queue holds then is final.
    page = await wait_until(
        lambda: _all_forwarded(agent, len(readings)), "every reading forwarded", timeout=30
    )

    messages = await wait_for_messages(postgres.dsn, config["backend"]["queue"], len(readings))
    assert [m["payload"] for m in messages] == [int(payload) for _, payload in readings]
    assert metric_value(page, "farm_agent_duplicates_suppressed_total") == len(committed)


async def _all_forwarded(agent: AgentProcess, count: int) -> str | None:
    """The metrics page once the spool is empty and `count` readings went relayed or suppressed."""
    page = await asyncio.to_thread(agent.metrics)
    forwarded = metric_value(page, "farm_agent_readings_relayed_total") + metric_value(
        page, "farm_agent_duplicates_suppressed_total"
    )
    return (
        page if metric_value(page, "farm_agent_spool_depth") == 0 and forwarded >= count else None
    )
