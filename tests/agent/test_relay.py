"""The relay on real services: every reading reaches the queue exactly once, intact."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from tests.support.agent import AgentProcess
from tests.support.mqtt import publisher
from tests.support.queues import wait_for_messages
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


async def test_an_agent_subscribed_to_its_own_status_topics_refuses_to_start_naming_the_keys(
    make_config: Callable[..., dict[str, Any]],
    start_agent: Callable[..., AgentProcess],
    test_id: str,
) -> None:
    # Messages there are the agents' own and never relayed: readings there would vanish.
    prefix = f"{test_id}_status"
    config = make_config(
        topics=[f"{test_id}/#", f"{prefix}/#"],
        mqtt={"topic_prefix": prefix, "discovery_prefix": None},
    )

    agent = start_agent(config, ready=False)

    assert agent.wait_exit(20) == 2
    assert f"mqtt.topics.1: '{prefix}/#' overlaps mqtt.topic_prefix" in agent.log()
