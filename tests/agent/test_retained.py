"""Retained readings (ESPHome, Tasmota, zigbee2mqtt publish sensor state retained)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from tests.support.agent import AgentProcess
from tests.support.mqtt import publisher
from tests.support.queues import queue_messages, wait_for_messages
from tools.services import Mosquitto, Postgres


def wait_reconnected(agent: AgentProcess, timeout: float = 30) -> None:
    """Until the log of this start shows the broker connection lost and made again."""
    deadline = time.monotonic() + timeout
    while (
        ": connected"
        not in agent.log().split(f"--- start {agent.starts}")[-1].partition(": disconnected")[2]
    ):
        assert time.monotonic() < deadline, f"agent did not reconnect:\n{agent.log()[-2000:]}"
        assert agent.running, agent.log()[-2000:]
        time.sleep(0.1)


async def test_a_retained_reading_reaches_the_queue_once_across_restarts_and_reconnects(
    make_config: Callable[..., dict[str, Any]],
    start_agent: Callable[..., AgentProcess],
    mosquitto: Mosquitto,
    postgres: Postgres,
    test_id: str,
) -> None:
    config = make_config()
    queue = config["backend"]["queue"]
    state_topic = f"{test_id}/barn/sensor/temperature/state"
    with publisher(mosquitto.port, f"{test_id}-device") as device:
        device.wait_acked([device.client.publish(state_topic, "21.5", qos=1, retain=True).mid], 10)

    agent = start_agent(config)
    await wait_for_messages(postgres.dsn, queue, 1)
    agent.terminate()
    agent.start()
    agent.wait_ready()
    agent.kill()
    agent.start()
    agent.wait_ready()
    mosquitto.restart()  # the broker drops the connection; the agent reconnects
    wait_reconnected(agent)
    with publisher(mosquitto.port, f"{test_id}-pub") as device:
        device.publish_all([(f"{test_id}/barn/marker", "done")])
    await wait_for_messages(postgres.dsn, queue, 2)
    await asyncio.sleep(1)  # any late copy of the retained reading would show by now

    messages = await queue_messages(postgres.dsn, queue)
    assert [(m["topic"], m["payload"]) for m in messages] == [
        (state_topic, 21.5),
        (f"{test_id}/barn/marker", "done"),
    ]
