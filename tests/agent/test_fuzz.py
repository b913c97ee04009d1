"""Fuzzing: hostile topics, payloads and config files never crash the agent or lose a reading."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from farm_agent.config import ConfigError
from farm_agent.config_file import parse_config
from tests.support.agent import AgentProcess
from tests.support.mqtt import publisher
from tests.support.queues import queue_messages
from tools.services import Mosquitto, Postgres

# Any text a broker accepts in a topic level: no wildcards or separator, and none of the
# control, surrogate or non-characters that Mosquitto refuses (it drops the publisher).
TOPIC_LEVEL = st.text(
    alphabet=st.characters(blacklist_characters="+#/", blacklist_categories=("Cc", "Cs", "Cn")),
    min_size=1,
    max_size=12,
)
HOSTILE_PAYLOADS = st.one_of(
    st.binary(max_size=64),
    st.binary(min_size=1100, max_size=1500),  # over this test's max_payload_bytes
    st.just(b""),
    st.sampled_from([b"NaN", b"Infinity", b"-Infinity", b'{"t": NaN}', b"\xff\xfe", b"\x00"]),
    st.integers(min_value=60, max_value=200).map(lambda depth: b"[" * depth + b"]" * depth),
    st.text(alphabet=st.characters(max_codepoint=0x1F), max_size=20).map(str.encode),
    st.floats(allow_nan=False, allow_infinity=False).map(lambda value: json.dumps(value).encode()),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=3).map(
        lambda value: json.dumps(value).encode()
    ),
)


async def test_hostile_readings_each_end_in_the_queue_or_the_dlq_and_the_agent_keeps_running(
    make_config: Callable[..., dict[str, Any]],
    start_agent: Callable[..., AgentProcess],
    mosquitto: Mosquitto,
    postgres: Postgres,
    test_id: str,
) -> None:
    config = make_config(mqtt={"max_payload_bytes": 1024})
    agent = start_agent(config)
    readings: list[tuple[str, bytes]] = []

    @settings(
        max_examples=400,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(levels=st.lists(TOPIC_LEVEL, min_size=1, max_size=4), payload=HOSTILE_PAYLOADS)
    def collect(levels: list[str], payload: bytes) -> None:
        readings.append(("/".join([test_id, *levels]), payload))

    collect()
    with publisher(mosquitto.port, f"{test_id}-pub") as device:
        device.publish_all(list(readings))
    queue = config["backend"]["queue"]

    for _ in range(100):
        good = await queue_messages(postgres.dsn, queue)
        dead = await queue_messages(postgres.dsn, f"{queue}_dlq")
        if len(good) + len(dead) >= len(readings):
            break
        await asyncio.sleep(0.3)

    assert agent.running, "the agent must survive every payload"
    assert len(good) + len(dead) == len(readings)
    assert all(message["error"] for message in dead)
    relayed_topics = sorted(message["topic"] for message in good + dead)
    assert relayed_topics == sorted(topic for topic, _ in readings)


CONFIG_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=30)
    | st.sampled_from(["${HOME}", "${FARM_FUZZ_UNSET}", "postgresql://u:p@h:1/d", "farm/#"]),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(
            st.sampled_from(
                [
                    "agent_id",
                    "mqtt",
                    "backend",
                    "spool",
                    "probes",
                    "http",
                    "port",
                    "topics",
                    "queue",
                ]
            )
            | st.text(max_size=8),
            children,
            max_size=5,
        )
    ),
    max_leaves=15,
)


@settings(max_examples=10_000, deadline=None, database=None)
@given(document=CONFIG_VALUES)
def test_config_loader_answers_any_document_with_a_config_or_a_config_error(
    document: object,
) -> None:
    try:
        parse_config(document, base_dir=Path("/nonexistent"))
    except ConfigError as err:
        message = str(err)
    else:
        return
    assert message, "a config error always says what is wrong"


@settings(max_examples=2_000, deadline=None, database=None)
@given(
    agent_id=st.text(max_size=70),
    port=st.one_of(st.integers(), st.text(max_size=6)),
    batch_size=st.one_of(st.integers(), st.floats(), st.none()),
)
def test_config_loader_names_the_key_of_any_bad_scalar(
    agent_id: str, port: object, batch_size: object
) -> None:
    document = yaml.safe_load(
        yaml.safe_dump(
            {
                "agent_id": agent_id,
                "mqtt": {"port": port},
                "backend": {"direct_dsn": "postgresql://h/db", "batch_size": batch_size},
            }
        )
    )
    try:
        parse_config(document)
    except ConfigError as err:
        message = str(err)
    else:
        return
    assert message.split(":", maxsplit=1)[0] in {"agent_id", "mqtt.port", "backend.batch_size"}
