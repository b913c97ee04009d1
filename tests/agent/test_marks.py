"""High-water marks: exactly once without a table that grows with every reading."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg

from tests.agent.support import write_version_1_spool
from tests.support.agent import AgentProcess
from tests.support.metrics import metric_value
from tests.support.mqtt import publisher
from tests.support.queues import queue_messages, wait_for_messages
from tests.support.waiting import wait_until
from tools.services import Mosquitto, Postgres

PROJECT_TABLES_SIZE = """
SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'm', 'p')
  AND n.nspname NOT IN ('pgmq', 'pg_catalog', 'information_schema', 'pg_toast')
"""


async def fetchval(dsn: str, sql: str, *args: Any) -> Any:
    connection = await asyncpg.connect(dsn)
    try:
        return await connection.fetchval(sql, *args)
    finally:
        await connection.close()


def readings(topic: str, first: int, count: int) -> list[tuple[str, bytes | str]]:
    return [(topic, str(value)) for value in range(first, first + count)]


async def test_relaying_20000_readings_grows_the_projects_tables_by_less_than_64_kb(
    make_config: Callable[..., dict[str, Any]],
    start_agent: Callable[..., AgentProcess],
    mosquitto: Mosquitto,
    postgres: Postgres,
    test_id: str,
) -> None:
    config = make_config()
    queue = config["backend"]["queue"]
    start_agent(config)
    topic = f"{test_id}/field1/soil/moisture"
    with publisher(mosquitto.port, f"{test_id}-pub") as device:
        device.publish_all(readings(topic, 0, 1))
        await wait_for_messages(postgres.dsn, queue, 1)
        before = await fetchval(postgres.dsn, PROJECT_TABLES_SIZE)
        for first in range(1, 20001, 5000):
            device.publish_all(readings(topic, first, 5000))

    messages = await wait_for_messages(postgres.dsn, queue, 20001, timeout=120)
    after = await fetchval(postgres.dsn, PROJECT_TABLES_SIZE)

    assert len(messages) == 20001
    assert after - before < 64 * 1024, f"the project's tables grew by {after - before} bytes"


async def test_a_spool_restored_from_an_older_copy_loses_and_duplicates_nothing(
    make_config: Callable[..., dict[str, Any]],
    start_agent: Callable[..., AgentProcess],
    mosquitto: Mosquitto,
    postgres: Postgres,
    test_id: str,
) -> None:
    config = make_config()
    queue = config["backend"]["queue"]
    spool = Path(config["spool"]["path"])
    copy = spool.with_name("spool-backup.db")
    topic = f"{test_id}/greenhouse/air/temperature"
    agent = start_agent(config)
    with publisher(mosquitto.port, f"{test_id}-pub") as device:
        device.publish_all(readings(topic, 100, 3))
        await wait_for_messages(postgres.dsn, queue, 3)
        # The backup is taken while the spool still holds readings not relayed yet.
        postgres.stop()
        try:
            device.publish_all(readings(topic, 200, 3))
            await wait_until(
                lambda: metric_value(agent.metrics(), "farm_agent_spool_depth") == 3,
                "holding the readings in its spool",
                10,
            )
            assert agent.terminate() == 0
            shutil.copy(spool, copy)
        finally:
            postgres.start()
        agent.start()
        agent.wait_ready()
        device.publish_all(readings(topic, 300, 3))
        await wait_for_messages(postgres.dsn, queue, 9)
        assert agent.terminate() == 0
        for leftover in spool.parent.glob(spool.name + "-*"):
            leftover.unlink()
        shutil.copy(copy, spool)  # restored from the backup

        agent.start()
        agent.wait_ready()
        device.publish_all(readings(topic, 400, 3))
        await wait_for_messages(postgres.dsn, queue, 12)
    await wait_until(
        lambda: metric_value(agent.metrics(), "farm_agent_spool_depth") == 0,
        "done with the restored readings",
        10,
    )
    await asyncio.sleep(0.5)

    messages = await queue_messages(postgres.dsn, queue)
    assert [m["payload"] for m in messages] == [
        *range(100, 103),
        *range(200, 203),
        *range(300, 303),
        *range(400, 403),
    ]
    assert len({m["key"] for m in messages}) == 12
    assert agent.log().count("was restored from an older copy (or replaced)") == 1


async def test_an_old_ledger_becomes_marks_and_its_relayed_keys_stay_suppressed(
    make_config: Callable[..., dict[str, Any]],
    start_agent: Callable[..., AgentProcess],
    postgres: Postgres,
    test_id: str,
) -> None:
    # The previous version crashed after committing readings 1 and 2 of its spool to the
    # queue, before deleting them from the spool; its ledger holds their keys.
    config = make_config()
    queue = config["backend"]["queue"]
    agent_id = config["agent_id"]
    write_version_1_spool(Path(config["spool"]["path"]), "0a1b2c3d4e5f", [b"11", b"12", b"13"])
    connection = await asyncpg.connect(postgres.dsn)
    try:
        await connection.execute(
            """
            CREATE SCHEMA IF NOT EXISTS farm_resilience;
            DROP TABLE IF EXISTS farm_resilience.relay_ledger;
            CREATE TABLE farm_resilience.relay_ledger (
                key text PRIMARY KEY, relayed_at timestamptz NOT NULL DEFAULT now()
            );
            CREATE INDEX relay_ledger_relayed_at_idx ON farm_resilience.relay_ledger (relayed_at);
            """
        )
        await connection.executemany(
            "INSERT INTO farm_resilience.relay_ledger (key) VALUES ($1)",
            [
                (f"{agent_id}:0a1b2c3d4e5f:1",),
                (f"{agent_id}:0a1b2c3d4e5f:2",),
                (f"{agent_id}-other:99aa:17",),
            ],
        )
    finally:
        await connection.close()

    agent = start_agent(config)
    messages = await wait_for_messages(postgres.dsn, queue, 1)
    await wait_until(
        lambda: metric_value(agent.metrics(), "farm_agent_spool_depth") == 0,
        "done with the spooled readings",
        10,
    )

    messages = await queue_messages(postgres.dsn, queue)
    assert [(m["key"], m["payload"]) for m in messages] == [(f"{agent_id}:0a1b2c3d4e5f:3", 13)]
    assert not await fetchval(
        postgres.dsn, "SELECT to_regclass('farm_resilience.relay_ledger') IS NOT NULL"
    )
    marks = await fetchval(
        postgres.dsn,
        "SELECT array_agg(agent_id || ':' || key_space || ':' || last_seq ORDER BY agent_id)"
        " FROM farm_resilience.relay_marks WHERE agent_id LIKE $1",
        f"{agent_id}%",
    )
    assert marks == [f"{agent_id}:0a1b2c3d4e5f:3", f"{agent_id}-other:99aa:17"]
