"""The envelope and the payload rules, on their own (pure functions)."""

from __future__ import annotations

import base64
import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from farm_agent.relay.envelope import MAX_JSON_DEPTH, SpooledReading, build_envelope
from farm_agent.timestamps import format_timestamp

LIMIT = 262144


def reading(payload: bytes, topic: str = "farm/f1/soil/moisture") -> SpooledReading:
    return SpooledReading(7, "farm-east:abc:7", topic, payload, 1795665600.123456, len(payload))


def parse_payload(payload: bytes, max_payload_bytes: int) -> tuple[Any, str | None]:
    """What the queue gets of a payload: its value, or the dead letter's reason."""
    body = json.loads(build_envelope(reading(payload), "farm-east", max_payload_bytes).body)
    return (None, body["error"]) if "error" in body else (body["payload"], None)


def test_envelope_carries_the_contract_fields_and_the_json_payload() -> None:
    envelope = build_envelope(reading(b'{"value": 21.5}'), "farm-east", LIMIT)

    assert not envelope.dead_letter
    assert json.loads(envelope.body) == {
        "v": 1,
        "key": "farm-east:abc:7",
        "agent_id": "farm-east",
        "topic": "farm/f1/soil/moisture",
        "payload": {"value": 21.5},
        "received_at": "2026-11-26T04:00:00.123Z",
    }


def test_bare_numbers_become_numbers_and_other_text_stays_text() -> None:
    assert parse_payload(b"21.5", LIMIT) == (21.5, None)
    assert parse_payload(b"  42 ", LIMIT) == (42, None)
    assert parse_payload(b"ON", LIMIT) == ("ON", None)
    assert parse_payload(b"", LIMIT) == ("", None)
    assert parse_payload(b"NaN", LIMIT) == ("NaN", None)
    assert parse_payload(b'{"t": Infinity}', LIMIT) == ('{"t": Infinity}', None)


def test_refused_payloads_say_why() -> None:
    assert parse_payload(b"\xff", LIMIT)[1] == "payload is not valid UTF-8 (byte 0)"
    assert parse_payload(b"x" * 11, 10)[1] == (
        "payload of 11 bytes exceeds mqtt.max_payload_bytes (10)"
    )
    assert "NUL" in str(parse_payload(b"a\x00b", LIMIT)[1])
    deep = b"[" * (MAX_JSON_DEPTH + 1) + b"]" * (MAX_JSON_DEPTH + 1)
    assert parse_payload(deep, LIMIT)[1] == f"JSON nested deeper than {MAX_JSON_DEPTH} levels"
    shallow = b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH
    assert parse_payload(shallow, LIMIT)[1] is None


def test_dead_letter_keeps_bytes_that_are_not_text_in_base64() -> None:
    envelope = build_envelope(reading(b"\xc3\x28 bad"), "farm-east", LIMIT)
    body = json.loads(envelope.body)

    assert envelope.dead_letter
    assert base64.b64decode(body["payload_b64"]) == b"\xc3\x28 bad"
    assert body["error"].startswith("payload is not valid UTF-8")
    assert "payload" not in body


def test_timestamps_are_utc_with_milliseconds_and_z() -> None:
    assert format_timestamp(0) == "1970-01-01T00:00:00.000Z"
    assert format_timestamp(1.9999) == "1970-01-01T00:00:01.999Z"


@settings(max_examples=10_000, deadline=None)
@given(payload=st.binary(max_size=300), topic=st.text(min_size=1, max_size=60))
def test_any_payload_yields_a_serialisable_envelope_or_a_reasoned_dead_letter(
    payload: bytes, topic: str
) -> None:
    envelope = build_envelope(reading(payload, topic), "farm-east", 200)
    body = json.loads(envelope.body)

    assert body["topic"] == topic.replace("\x00", "\ufffd")
    assert not _holds_nul(body), "PostgreSQL refuses U+0000 in jsonb"
    if envelope.dead_letter:
        assert body["error"]
        kept = base64.b64decode(body["payload_b64"]) if "payload_b64" in body else None
        assert kept is None or payload.startswith(kept)
    else:
        assert len(payload) <= 200


@settings(max_examples=1000, deadline=None)
@given(
    value=st.recursive(
        st.none()
        | st.booleans()
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.integers()
        | st.text(),
        lambda children: (
            st.lists(children, max_size=4)
            | st.dictionaries(st.text(max_size=8), children, max_size=4)
        ),
        max_leaves=20,
    )
)
def test_json_payloads_round_trip_unchanged(value: object) -> None:
    text = json.dumps(value)
    parsed, error = parse_payload(text.encode(), LIMIT)

    if error is None:
        assert json.dumps(parsed) == text
    else:
        assert "\\u0000" in text or "NUL" in error


def _holds_nul(value: object) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_holds_nul(key) or _holds_nul(item) for key, item in value.items())
    if isinstance(value, list):
        return any(_holds_nul(item) for item in value)
    return False
