"""Readings the queue cannot take go to the dead-letter queue with the reason; the rest flow."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import asyncpg

from tests.agent.support import AgentProcess, publisher, wait_for_messages
from tools.services import Mosquitto, Postgres


async def test_invalid_utf8_and_oversize_payloads_are_dead_lettered_and_good_readings_all_arrive(
    make_config: Callable[..., dict[str, Any]],
    start_agent: Callable[..., AgentProcess],
    mosquitto: Mosquitto,
    postgres: Postgres,
    test_id: str,
) -> None:
    config = make_config(mqtt={"max_payload_bytes": 1024})
    agent = start_agent(config)
    agent.wait_connected()
    topic = f"{test_id}/field1/soil/moisture"
    invalid_utf8 = b"\xff\xfe21.5\xc3"
    oversize = b"7" * 5000
    readings: list[tuple[str, bytes | str]] = [
        (topic, "20.1"),
        (topic, invalid_utf8),
        (topic, "20.2"),
        (topic, oversize),
        (topic, '{"nul": "a\\u0000b"}'),
        (topic, "20.3"),
    ]
    with publisher(mosquitto.port, f"{test_id}-pub") as device:
        device.publish_all(readings)
    queue = config["backend"]["queue"]

    good = await wait_for_messages(postgres.dsn, queue, 3)
    dead = await wait_for_messages(postgres.dsn, f"{queue}_dlq", 3)

    assert [m["payload"] for m in good] == [20.1, 20.2, 20.3]
    assert len(dead) == 3
    not_utf8, too_big, with_nul = dead
    assert "not valid UTF-8" in not_utf8["error"]
    assert base64.b64decode(not_utf8["payload_b64"]) == invalid_utf8
    assert "5000 bytes exceeds mqtt.max_payload_bytes (1024)" in too_big["error"]
    assert too_big["payload_truncated"] is True
    assert too_big["payload_size"] == 5000
    assert "\\u0000" in with_nul["error"]
    assert with_nul["payload"] == '{"nul": "a\\u0000b"}'
    for message in dead:
        assert message["topic"] == topic
        assert message["agent_id"] == config["agent_id"]
        assert message["key"]


async def test_payloads_postgres_refuses_are_found_in_their_batch_and_dead_lettered(
    make_config: Callable[..., dict[str, Any]],
    start_agent: Callable[..., AgentProcess],
    mosquitto: Mosquitto,
    postgres: Postgres,
    test_id: str,
) -> None:
    # A lone surrogate is valid JSON for Python but PostgreSQL's jsonb refuses it:
    # the batch must be split until the one bad reading is found.
    config = make_config(backend={"batch_interval_ms": 500})
    agent = start_agent(config)
    agent.wait_connected()
    topic = f"{test_id}/barn/co2"
    readings: list[tuple[str, bytes | str]] = [(topic, str(400 + n)) for n in range(40)]
    readings.insert(17, (topic, '{"text": "\\ud800"}'))
    with publisher(mosquitto.port, f"{test_id}-pub") as device:
        device.publish_all(readings)
    queue = config["backend"]["queue"]

    good = await wait_for_messages(postgres.dsn, queue, 40)
    dead = await wait_for_messages(postgres.dsn, f"{queue}_dlq", 1)

    assert [m["payload"] for m in good] == [400 + n for n in range(40)]
    assert len(dead) == 1
    assert dead[0]["error"].startswith("refused by PostgreSQL")
    assert dead[0]["payload"] == '{"text": "\\ud800"}'


async def test_json_numbers_beyond_a_python_float_reach_the_queue_with_every_digit(
    make_config: Callable[..., dict[str, Any]],
    start_agent: Callable[..., AgentProcess],
    mosquitto: Mosquitto,
    postgres: Postgres,
    test_id: str,
) -> None:
    # json.loads makes 1e999 an infinity that json.dumps refuses; the payload's own
    # text goes into the envelope, and jsonb's numeric keeps it exactly.
    config = make_config()
    agent = start_agent(config)
    agent.wait_connected()
    topic = f"{test_id}/lab/counter"
    precise = "3.14159265358979323846264338327950288"
    with publisher(mosquitto.port, f"{test_id}-pub") as device:
        device.publish_all([(topic, "1e999"), (topic, precise), (topic, "20.5")])

    queue = config["backend"]["queue"]
    await wait_for_messages(postgres.dsn, queue, 3)
    connection = await asyncpg.connect(postgres.dsn)
    try:
        payloads = await connection.fetch(
            f"SELECT message->>'payload' AS text FROM pgmq.q_{queue} ORDER BY msg_id"
        )
    finally:
        await connection.close()

    assert [row["text"] for row in payloads] == ["1" + "0" * 999, precise, "20.5"]
