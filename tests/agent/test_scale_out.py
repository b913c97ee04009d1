"""Two agents share the load through an MQTT 5 shared subscription, each reading once."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from tests.support.agent import AgentProcess
from tests.support.mqtt import StreamPublisher
from tests.support.queues import assert_exactly_once, queue_messages, wait_for_messages
from tools.services import Mosquitto, Postgres


async def test_two_agents_on_a_shared_subscription_relay_each_reading_once_and_survive_a_kill(
    make_config: Callable[..., dict[str, Any]],
    start_agent: Callable[..., AgentProcess],
    mosquitto: Mosquitto,
    postgres: Postgres,
    test_id: str,
) -> None:
    shared = [f"$share/relay/{test_id}/#"]
    east = start_agent(make_config(agent_id="scale-east", topics=shared), ready=False)
    west = start_agent(make_config(agent_id="scale-west", topics=shared), ready=False)
    east.wait_ready()
    west.wait_ready()
    queue = make_config()["backend"]["queue"]
    topics = [f"{test_id}/field{n}/soil/moisture" for n in range(6)]
    stream = StreamPublisher(mosquitto.port, f"{test_id}-pub", topics, total=3000, rate=500).start()

    await asyncio.sleep(2)
    east.kill()
    relayed_when_east_died = len(await queue_messages(postgres.dsn, queue))
    carried_on = await wait_for_messages(postgres.dsn, queue, relayed_when_east_died + 300, 30)
    stream.join()
    # Readings in flight to the killed agent wait in its session on the broker.
    east.start()
    east.wait_ready()
    messages = await wait_for_messages(postgres.dsn, queue, len(stream.sent))

    assert len(carried_on) >= relayed_when_east_died + 300, "the surviving agent carries on"
    assert {m["agent_id"] for m in messages} == {"scale-east", "scale-west"}
    # Two agents commit independently: across them, publish order is not kept.
    assert_exactly_once(stream.sent, sorted(messages, key=lambda m: m["payload"]["n"]))
