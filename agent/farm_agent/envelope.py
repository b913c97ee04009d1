"""The queue envelope, built in one place: a reading, or a dead letter with its reason."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

ENVELOPE_VERSION = 1
# Deeper JSON is kept out of the queue: PostgreSQL parses jsonb recursively.
MAX_JSON_DEPTH = 64


@dataclass(frozen=True, slots=True)
class SpooledReading:
    """A reading as the spool holds it: the raw MQTT message and when it arrived."""

    seq: int
    key: str
    topic: str
    payload: bytes
    received_at: float


@dataclass(frozen=True, slots=True)
class Envelope:
    """One PGMQ message, already serialised; `dead_letter` tells which queue it belongs to."""

    key: str
    seq: int
    body: str
    dead_letter: bool
    received_at: float


def format_timestamp(epoch_s: float) -> str:
    """ISO 8601 UTC with milliseconds and a Z, as the envelope contract shows."""
    moment = datetime.fromtimestamp(epoch_s, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_payload(payload: bytes, max_payload_bytes: int) -> tuple[Any, str | None]:  # noqa: PLR0911
    """The payload as a JSON value (or a string if it is not JSON), or the reason it is refused."""
    if len(payload) > max_payload_bytes:
        return None, (
            f"payload of {len(payload)} bytes exceeds mqtt.max_payload_bytes ({max_payload_bytes})"
        )
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as err:
        return None, f"payload is not valid UTF-8 (byte {err.start})"
    if "\x00" in text:
        return None, "payload contains a NUL character, which PostgreSQL cannot store in JSON"
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        return text, None
    if _brackets_exceed(text) and _depth(value) > MAX_JSON_DEPTH:
        return None, f"JSON nested deeper than {MAX_JSON_DEPTH} levels"
    if "\\u0000" in text and _contains_nul(value):
        return None, "JSON contains a \\u0000 character, which PostgreSQL cannot store"
    return value, None


def _reject_constant(name: str) -> Any:
    # NaN and Infinity are not JSON and jsonb refuses them: keep such a payload as text.
    raise ValueError(name)


def _brackets_exceed(text: str) -> bool:
    return text.count("[") + text.count("{") > MAX_JSON_DEPTH


def _depth(value: Any) -> int:
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, dict):
            deepest = max(deepest, level)
            stack.extend((child, level + 1) for child in node.values())
        elif isinstance(node, list):
            deepest = max(deepest, level)
            stack.extend((child, level + 1) for child in node)
    return deepest


def _contains_nul(value: Any) -> bool:
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, str) and "\x00" in node:
            return True
        if isinstance(node, dict):
            stack.extend(node.keys())
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return False


def build_envelope(reading: SpooledReading, agent_id: str, max_payload_bytes: int) -> Envelope:
    """The queue envelope of a reading, or its dead-letter envelope when the payload is refused."""
    value, error = parse_payload(reading.payload, max_payload_bytes)
    if error is None and "\x00" in reading.topic:
        error = "topic contains a NUL character, which PostgreSQL cannot store"
    if error is not None:
        return dead_letter(reading, agent_id, error, max_payload_bytes)
    body = {
        "v": ENVELOPE_VERSION,
        "key": reading.key,
        "agent_id": agent_id,
        "topic": reading.topic,
        "payload": value,
        "received_at": format_timestamp(reading.received_at),
    }
    return Envelope(reading.key, reading.seq, _dumps(body), False, reading.received_at)


def dead_letter(
    reading: SpooledReading, agent_id: str, error: str, max_payload_bytes: int
) -> Envelope:
    """A dead-letter envelope: the fields plus `error`; bytes that are not text go in base64."""
    body: dict[str, Any] = {
        "v": ENVELOPE_VERSION,
        "key": reading.key,
        "agent_id": agent_id,
        # The one character PostgreSQL refuses in text; a dead letter must always be storable.
        "topic": reading.topic.replace("\x00", "\ufffd"),
        "received_at": format_timestamp(reading.received_at),
        "error": error,
        "payload_size": len(reading.payload),
    }
    kept = reading.payload[:max_payload_bytes]
    if len(kept) < len(reading.payload):
        body["payload_truncated"] = True
    text: str | None
    try:
        text = kept.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and "\x00" not in text and not body.get("payload_truncated"):
        body["payload"] = text
    else:
        body["payload_b64"] = base64.b64encode(kept).decode("ascii")
    return Envelope(reading.key, reading.seq, _dumps(body), True, reading.received_at)


def _dumps(body: dict[str, Any]) -> str:
    return json.dumps(body, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
