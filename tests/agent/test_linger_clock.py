"""The batch linger runs on the monotonic clock: a wall clock stepped back holds nothing."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import cast

from farm_agent.config_file import parse_config
from farm_agent.relay.forward import Forwarder
from farm_agent.relay.metrics import RelayMetrics
from farm_agent.relay.route import BackendRouter
from farm_agent.relay.spool import Arrival, AsyncSpool


async def test_a_batch_leaves_after_the_linger_when_the_wall_clock_was_stepped_back(
    tmp_path: Path,
) -> None:
    # A Pi without a clock boots in the future and NTP steps it back an hour: readings
    # received before the step carry a received_at an hour ahead of the clock now.
    config = parse_config(
        {
            "agent_id": "farm-east",
            "backend": {
                "direct_dsn": "postgresql://postgres@127.0.0.1:5432/postgres",
                "batch_interval_ms": 100,
            },
            "spool": {"path": str(tmp_path / "spool.db")},
        }
    )
    spool = await AsyncSpool.open(config.spool.path, config.agent_id, 1000)
    stepped_back_by_s = 3600
    await spool.append(
        [Arrival("farm/f1/t", b"21.5", 1, 1, False, time.time() + stepped_back_by_s)]
    )
    forwarder = Forwarder(config, spool, cast(BackendRouter, None), RelayMetrics())

    batch = await asyncio.wait_for(forwarder._next_batch(), 10)

    assert batch
    await spool.close()
