"""The relay on real services: every reading reaches the queue exactly once, intact."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from tests.agent.support import AgentProcess, publisher, queue_messages, wait_for_messages
from tools.services import Mosquitto, Postgres


async def test_readings_reach_the_queue_exactly_once_with_payloads_intact(
    make_config: Callable[..., dict[str, Any]],
    start_agent: Callable[..., AgentProcess],
    mosquitto: Mosquitto,
    postgres: Postgres,
    test_id: str,
) -> None:
    config = make_config()
    agent = start_agent(config)
    agent.wait_connected()
    sent: list[tuple[str, str]] = []
    for index in range(600):
        topic = f"{test_id}/field{index % 3}/soil/moisture"
        payload = str(20 + index / 10) if index % 2 else json.dumps({"value": index, "unit": "%"})
        sent.append((topic, payload))
    with publisher(mosquitto.port, f"{test_id}-pub") as device:
        device.publish_all(sent)

    messages = await wait_for_messages(postgres.dsn, config["backend"]["queue"], len(sent))

    assert len(messages) == len(sent)
    assert len({message["key"] for message in messages}) == len(sent)
    assert [(m["topic"], m["payload"]) for m in messages] == [
        (topic, json.loads(payload)) for topic, payload in sent
    ]
    first = messages[0]
    assert first["v"] == 1
    assert first["agent_id"] == config["agent_id"]
    assert first["received_at"].endswith("Z")
    assert agent.terminate() == 0


async def test_agents_own_status_and_health_are_not_relayed_even_when_subscribed(
    make_config: Callable[..., dict[str, Any]],
    start_agent: Callable[..., AgentProcess],
    mosquitto: Mosquitto,
    postgres: Postgres,
    test_id: str,
) -> None:
    prefix = f"{test_id}_status"
    config = make_config(
        topics=[f"{test_id}/#", f"{prefix}/#"],
        mqtt={"topic_prefix": prefix, "discovery_prefix": None},
        probes={"interval_s": 0.5},
    )
    agent = start_agent(config)
    agent.wait_connected()
    await asyncio.sleep(1.5)  # a few health reports go by on the subscribed prefix
    with publisher(mosquitto.port, f"{test_id}-pub") as device:
        device.publish_all([(f"{test_id}/field1/soil/moisture", "31.5")])

    await wait_for_messages(postgres.dsn, config["backend"]["queue"], 1)
    await asyncio.sleep(1)
    messages = await queue_messages(postgres.dsn, config["backend"]["queue"])

    assert [(m["topic"], m["payload"]) for m in messages] == [
        (f"{test_id}/field1/soil/moisture", 31.5)
    ]
