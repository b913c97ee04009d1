"""A full spool disk is backpressure, not a crash; a crashed stage exits non-zero."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from farm_agent.relay.spool import Arrival, Spool, SpoolDiskFullError
from tests.agent.support import fill
from tests.support.agent import AgentProcess
from tests.support.metrics import metric_value
from tests.support.mqtt import StreamPublisher, publisher
from tests.support.queues import assert_exactly_once, wait_for_messages
from tests.support.waiting import wait_until
from tools.services import Mosquitto, Postgres


async def test_a_full_spool_disk_stops_acking_reports_it_and_carries_on_when_space_returns(
    make_config: Callable[..., dict[str, Any]],
    start_agent: Callable[..., AgentProcess],
    mosquitto: Mosquitto,
    postgres: Postgres,
    small_disk: Path,
    test_id: str,
) -> None:
    config = make_config(
        spool={"path": str(small_disk / "spool.db")},
        probes={"interval_s": 0.5, "timeout_s": 2},
    )
    agent = start_agent(config)
    queue = config["backend"]["queue"]
    topics = [f"{test_id}/silo{n}/level" for n in range(2)]
    # Spooled while the database is away, then the disk fills up under them.
    spooled = StreamPublisher(mosquitto.port, f"{test_id}-a", topics, total=300, rate=1000)
    postgres.stop()
    try:
        spooled.start().join()
        await wait_until(
            lambda: metric_value(agent.metrics(), "farm_agent_spool_depth") == 300,
            "holding the readings in its spool",
            10,
        )
        ballast = fill(small_disk)
        waiting = StreamPublisher(mosquitto.port, f"{test_id}-b", topics, total=200, rate=1000)
        waiting.start()
        await wait_until(
            lambda: "spool disk full" in agent.readiness()["problems"],
            "saying so on /readyz",
            15,
        )
        await wait_until(
            lambda: any("spool disk full" in p for p in agent.problems()),
            "saying so in its health",
            15,
        )
    finally:
        postgres.start()
    # The readings already spooled drain although the disk is still full.
    await wait_for_messages(postgres.dsn, queue, 300)
    ballast.unlink()
    waiting.join()

    messages = await wait_for_messages(postgres.dsn, queue, 500)

    assert_exactly_once(spooled.sent + waiting.sent, messages, publish_order=False)
    assert agent.running, "the agent never exits for a full disk"
    assert agent.starts == 1
    await wait_until(lambda: agent.readiness()["ready"], "ready again", 15)


async def test_a_crashed_stage_makes_the_agent_exit_non_zero(
    make_config: Callable[..., dict[str, Any]],
    start_agent: Callable[..., AgentProcess],
    mosquitto: Mosquitto,
    test_id: str,
) -> None:
    config = make_config()
    agent = start_agent(config)
    # Something outside the agent breaks its spool file under it.
    with contextlib.closing(sqlite3.connect(config["spool"]["path"], timeout=10)) as spool:
        spool.execute("DROP TABLE readings")
    with publisher(mosquitto.port, f"{test_id}-pub") as device:
        device.publish(f"{test_id}/field1/soil/moisture", "31.5")

        code = agent.wait_exit(20)

    assert code == 1, "systemd's Restart=on-failure restarts only a failed exit"
    assert "stage farm-agent-ingest failed" in agent.log()


def test_a_spool_on_a_full_disk_still_opens_drains_and_takes_readings_once_space_returns(
    small_disk: Path,
) -> None:
    path = small_disk / "spool.db"
    spool = Spool(path, "farm-east")
    spool.append([Arrival("farm/f1/t", b"20.1", 1, 1, False, 1795665600.0)])
    spool.close()
    ballast = fill(small_disk)

    reopened = Spool(path, "farm-east")  # after a restart on the full disk
    with pytest.raises(SpoolDiskFullError):
        reopened.append([Arrival("farm/f1/t", b"20.2", 2, 1, False, 1795665600.0)])
    batch = reopened.peek(10, 1 << 20)
    assert batch is not None
    reopened.delete([reading.seq for reading in batch.readings])
    ballast.unlink()

    assert reopened.append([Arrival("farm/f1/t", b"20.3", 3, 1, False, 1795665600.0)]) == 1
    assert reopened.depth == 1
    reopened.close()
