"""Built-in handlers: relayed readings stored once each, notifications published over MQTT."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import asyncpg

from farm_agent.config_file import parse_config
from farm_agent.tasks import submit
from tests.agent.support import running_worker, tasks_section
from tests.support.agent import AgentProcess
from tests.support.mqtt import Watcher, publisher
from tests.support.queues import query_rows, queue_messages, queue_rows, send, send_texts
from tests.support.waiting import wait_until
from tools.services import Mosquitto, Postgres, free_port

ConfigMaker = Callable[..., dict[str, Any]]
READINGS = "SELECT key, agent_id, topic, payload::text AS payload, received_at FROM farm_resilience.readings WHERE key LIKE $1 ORDER BY key"  # noqa: E501


def reading(test_id: str, n: int, payload: Any) -> dict[str, Any]:
    return {
        "v": 1,
        "key": f"{test_id}:{n}",
        "agent_id": "farm-east",
        "topic": f"farm/field{n}/soil/moisture",
        "payload": payload,
        "received_at": f"2026-11-26T04:00:0{n}.123Z",
    }


def readings_source(test_id: str, queue: str, **overrides: Any) -> dict[str, Any]:
    return tasks_section(
        test_id, {}, sources=[{"queue": queue, "type": "sensor_reading"}], **overrides
    )


async def stored(postgres: Postgres, prefix: str, count: int) -> list[Any]:
    try:
        rows = await query_rows(postgres.dsn, READINGS, f"{prefix}%")
    except asyncpg.UndefinedTableError:
        return []  # the worker has not created the table yet
    return rows if len(rows) >= count else []


async def test_relayed_readings_become_tasks_stored_once_each_with_numbers_exact(
    make_config: ConfigMaker, postgres: Postgres, test_id: str
) -> None:
    document = make_config()
    queue = document["backend"]["queue"]
    config = parse_config({**document, "tasks": readings_source(test_id, queue)})
    # As the relay writes them: JSON payloads embedded as the sensor sent them.
    exact = json.dumps(reading(test_id, 1, None)).replace(
        '"payload": null', '"payload": {"value": 20.100000000000001, "unit": "%"}'
    )
    await send_texts(postgres.dsn, queue, exact)
    await send(
        postgres.dsn,
        queue,
        reading(test_id, 2, "dry"),
        reading(test_id, 2, "dry"),  # the same reading delivered twice
        reading(test_id, 3, 1e300),
        {"not": "a reading"},
    )

    async with running_worker(config):
        rows = await wait_until(lambda: stored(postgres, test_id, 3), "three readings stored")
        [letter] = await wait_until(
            lambda: queue_messages(postgres.dsn, config.tasks.dead_letter_queue), "a dead letter"
        )
        await wait_until(lambda: _empty(postgres, queue), "the source queue emptied")

    assert [row["key"] for row in rows] == [f"{test_id}:{n}" for n in (1, 2, 3)]
    assert rows[0]["payload"] == '{"unit": "%", "value": 20.100000000000001}'
    assert json.loads(rows[1]["payload"]) == "dry"
    assert rows[2]["topic"] == "farm/field3/soil/moisture"
    assert rows[0]["agent_id"] == "farm-east"
    assert rows[0]["received_at"].isoformat() == "2026-11-26T04:00:01.123000+00:00"
    assert letter["error"] == "not a reading envelope (a JSON object with v 1)"
    assert letter["message"] == {"not": "a reading"}
    assert letter["queue"] == queue
    assert len(await queue_rows(postgres.dsn, queue, "a")) == 4


async def test_readings_relayed_from_mqtt_reach_the_readings_table(
    make_config: ConfigMaker,
    start_agent: Callable[..., AgentProcess],
    mosquitto: Mosquitto,
    postgres: Postgres,
    test_id: str,
) -> None:
    document = make_config()
    start_agent(document)
    queue = document["backend"]["queue"]
    config = parse_config({**document, "tasks": readings_source(test_id, queue)})
    sent = [(f"{test_id}/field{n}/temp", json.dumps({"celsius": 20 + n / 10})) for n in range(20)]

    async with running_worker(config):
        with publisher(mosquitto.port, f"{test_id}-pub") as device:
            device.publish_all(sent)
        rows = await wait_until(
            lambda: stored(postgres, config.agent_id, 20), "twenty readings stored"
        )

    assert sorted((row["topic"], json.loads(row["payload"])) for row in rows) == sorted(
        (topic, json.loads(payload)) for topic, payload in sent
    )
    assert {row["agent_id"] for row in rows} == {config.agent_id}


async def test_send_notification_is_published_to_the_notify_topic_with_the_task_id(
    make_config: ConfigMaker, mosquitto: Mosquitto, postgres: Postgres, test_id: str
) -> None:
    prefix = f"farm_{test_id}"
    config = parse_config(
        make_config(mqtt={"topic_prefix": prefix}, tasks=tasks_section(test_id, {}))
    )
    watcher = Watcher(mosquitto.port, f"{test_id}-watch", [f"{prefix}/notify/#"])
    try:
        async with running_worker(config):
            task_id = await submit(
                postgres.dsn,
                "send_notification",
                {"message": "Valve 3 stuck open", "target": "irrigation", "level": "warning"},
                "high",
                queue=config.tasks.queue,
            )
            message = await watcher.wait_for(f"{prefix}/notify/irrigation")
            await submit(postgres.dsn, "send_notification", {"text": 1}, queue=config.tasks.queue)
            [letter] = await wait_until(
                lambda: queue_messages(postgres.dsn, config.tasks.dead_letter_queue),
                "the bad notification dead-lettered",
            )
    finally:
        watcher.close()

    assert message.json() == {
        "id": task_id,
        "message": "Valve 3 stuck open",
        "target": "irrigation",
        "level": "warning",
    }
    assert not message.retain
    assert letter["error"] == 'PermanentError: payload must be an object with a "message" string'
    assert letter["attempts"] == 1


async def test_notification_while_the_broker_is_unreachable_is_retried_then_dead_lettered(
    make_config: ConfigMaker, postgres: Postgres, test_id: str
) -> None:
    port = free_port()
    config = parse_config(
        # A lease far longer than the 1 s backoff: a retry committed after a short lease
        # expired (a loaded machine) made the reader skip a re-read it still held, which
        # PGMQ counted as an attempt (see the plain-handler timeout test).
        make_config(
            mqtt_port=port,
            tasks=tasks_section(test_id, {}, max_attempts=2, visibility_timeout_s=10),
        )
    )
    await submit(postgres.dsn, "send_notification", {"message": "hi"}, queue=config.tasks.queue)

    async with running_worker(config):
        [letter] = await wait_until(
            lambda: queue_messages(postgres.dsn, config.tasks.dead_letter_queue), "a dead letter"
        )

    assert letter["attempts"] == 2
    assert letter["error"].startswith(f"ConnectionError: MQTT broker 127.0.0.1:{port} unreachable")


async def _empty(postgres: Postgres, queue: str) -> bool:
    return await queue_rows(postgres.dsn, queue) == []
