"""A slow uplink (cellular, satellite): batches shrink until they fit the statement timeout."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.e2e.faulty_network import FaultyProxy
from tests.support.agent import AgentProcess, with_secret
from tests.support.mqtt import publisher
from tests.support.queues import wait_for_messages
from tools.services import Mosquitto, Postgres

UPLINK_BYTES_PER_S = 256 * 1024
READING_BYTES = 4096


@pytest.fixture
def uplink(postgres: Postgres) -> Iterator[FaultyProxy]:
    """The agent's only route to the database, through a 256 KB/s link."""
    proxy = FaultyProxy(postgres.port).start()
    proxy.limit_bandwidth(UPLINK_BYTES_PER_S)
    yield proxy
    proxy.close()


async def test_batches_too_large_for_the_uplink_shrink_until_every_reading_arrives_then_grow_back(
    make_config: Callable[..., dict[str, Any]],
    start_agent: Callable[..., AgentProcess],
    mosquitto: Mosquitto,
    postgres: Postgres,
    uplink: FaultyProxy,
    test_id: str,
) -> None:
    # 300 readings of 4 KB gathered into one batch take about 5 s on this link, far
    # beyond the 1.5 s statement timeout; the byte cap is set out of the way, so only
    # shrinking the batch after a timeout can get them through.
    scheme, rest = with_secret(postgres.dsn).split("@", 1)
    through_uplink = f"{scheme}@{uplink.dsn_host}/{rest.split('/', 1)[1]}"
    config = make_config(
        pooler_dsn=None,
        direct_dsn=through_uplink,
        backend={
            "statement_timeout_s": 1.5,
            "connect_timeout_s": 5,
            "batch_interval_ms": 3000,
            "batch_max_bytes": 8 * 1024 * 1024,
        },
    )
    agent = start_agent(config)
    topic = f"{test_id}/camera/thumbnail"
    readings: list[tuple[str, bytes | str]] = [
        (topic, f'{{"n": {n}, "image": "{"A" * READING_BYTES}"}}') for n in range(300)
    ]
    with publisher(mosquitto.port, f"{test_id}-pub") as device:
        device.publish_all(readings)

    messages = await wait_for_messages(postgres.dsn, config["backend"]["queue"], 300, timeout=90)

    assert [m["payload"]["n"] for m in messages] == list(range(300))
    assert "took longer than backend.statement_timeout_s" in agent.log()
    assert "commits are quick again:" not in agent.log()

    uplink.heal()  # the link is fast again: quick commits let the batches grow back
    with publisher(mosquitto.port, f"{test_id}-pub") as device:
        device.publish_all([(topic, f'{{"n": {n}}}') for n in range(300, 1000)])
    messages = await wait_for_messages(postgres.dsn, config["backend"]["queue"], 1000)

    assert [m["payload"]["n"] for m in messages] == list(range(1000))
    assert "commits are quick again: batches of up to 500 readings" in agent.log()
