"""Readings the queue cannot take go to the dead-letter queue with the reason; the rest flow."""

from __future__ import annotations

import base64
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg

from tests.support.agent import AgentProcess
from tests.support.mqtt import publisher
from tests.support.queues import wait_for_messages
from tools.services import Mosquitto, Postgres


async def test_invalid_utf8_and_oversize_payloads_are_dead_lettered_and_good_readings_all_arrive(
    make_config: Callable[..., dict[str, Any]],
    start_agent: Callable[..., AgentProcess],
    mosquitto: Mosquitto,
    postgres: Postgres,
    test_id: str,
) -> None:
    config = make_config(mqtt={"max_payload_bytes": 1024})
    start_agent(config)
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


async def test_payloads_postgres_would_refuse_go_straight_to_the_dlq_with_the_reason(
    make_config: Callable[..., dict[str, Any]],
    start_agent: Callable[..., AgentProcess],
    mosquitto: Mosquitto,
    postgres: Postgres,
    test_id: str,
) -> None:
    # Lone surrogates and numbers beyond PostgreSQL's numeric are valid JSON to Python
    # but refused by jsonb: recognised before sending, they cost no search by halves.
    config = make_config(backend={"batch_interval_ms": 500})
    agent = start_agent(config)
    topic = f"{test_id}/barn/co2"
    refused = ['{"text": "\\ud800"}', "1e999999", '{"v": [1, "\\udc00x"]}', "5e-16384"]
    readings: list[tuple[str, bytes | str]] = []
    for n in range(1000):
        readings.append((topic, refused[n // 2 % 4] if n % 2 else str(400 + n)))
    with publisher(mosquitto.port, f"{test_id}-pub") as device:
        device.publish_all(readings)
    queue = config["backend"]["queue"]

    good = await wait_for_messages(postgres.dsn, queue, 500)
    dead = await wait_for_messages(postgres.dsn, f"{queue}_dlq", 500)

    assert [m["payload"] for m in good] == [400 + n for n in range(0, 1000, 2)]
    assert [m["payload"] for m in dead] == [refused[n // 2 % 4] for n in range(1, 1000, 2)]
    assert all("lone UTF-16 surrogate" in m["error"] for m in dead[0::2])
    assert all("out of PostgreSQL's numeric range" in m["error"] for m in dead[1::2])
    log = agent.log()
    assert "refused by PostgreSQL" not in log, "no batch was split to find them"
    assert log.count("dead-lettered") == 0, "no warning per reading"


async def test_oversize_payloads_are_cut_on_arrival_and_memory_does_not_grow_with_their_number(
    make_config: Callable[..., dict[str, Any]],
    start_agent: Callable[..., AgentProcess],
    mosquitto: Mosquitto,
    postgres: Postgres,
    test_id: str,
) -> None:
    size = 8 * 1024 * 1024
    config = make_config(mqtt={"max_payload_bytes": 1024}, backend={"batch_interval_ms": 1000})
    agent = start_agent(config)
    topic = f"{test_id}/camera/raw"
    queue = config["backend"]["queue"]
    with publisher(mosquitto.port, f"{test_id}-pub") as device:
        device.publish_all([(topic, bytes([1]) + b"\xff" * (size - 1))])
        await wait_for_messages(postgres.dsn, f"{queue}_dlq", 1)
        after_one = peak_memory_kb(agent)
        device.publish_all([(topic, bytes([n]) + b"\xff" * (size - 1)) for n in range(2, 11)])
        dead = await wait_for_messages(postgres.dsn, f"{queue}_dlq", 10)
    after_ten = peak_memory_kb(agent)

    assert after_ten - after_one < 32 * 1024, (
        f"peak memory grew by {(after_ten - after_one) // 1024} MB for 9 more oversize readings"
    )
    assert len(dead) == 10
    for n, letter in enumerate(dead, 1):
        assert letter["payload_size"] == size
        assert letter["payload_truncated"] is True
        assert base64.b64decode(letter["payload_b64"]) == bytes([n]) + b"\xff" * 1023
        assert f"{size} bytes exceeds mqtt.max_payload_bytes (1024)" in letter["error"]


def peak_memory_kb(agent: AgentProcess) -> int:
    """The agent process's peak resident memory so far (VmHWM), in kB."""
    assert agent.process is not None
    status = Path(f"/proc/{agent.process.pid}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("VmHWM")).split()[1])


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
    start_agent(config)
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
