"""The queue envelope, built in one place: a reading, or a dead letter with its reason."""

from __future__ import annotations

import base64
import functools
import json
import time
from dataclasses import dataclass
from typing import Any, NamedTuple

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
    whole, fraction = divmod(epoch_s, 1.0)
    # Rounded to the microsecond first, as datetime does: 0.123 is 0.12299999... in binary.
    microseconds = round(fraction * 1_000_000)
    if microseconds == 1_000_000:
        whole, microseconds = whole + 1, 0
    return f"{_second_text(int(whole))}.{microseconds // 1000:03d}Z"


@functools.lru_cache(maxsize=16)
def _second_text(epoch_s: int) -> str:
    # Readings arrive thousands a second: most share their second with the one before.
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch_s))


class _Payload(NamedTuple):
    text: str
    value: Any
    is_json: bool
    error: str | None


def parse_payload(payload: bytes, max_payload_bytes: int) -> tuple[Any, str | None]:
    """The payload as a JSON value (or a string if it is not JSON), or the reason it is refused."""
    parsed = _parse(payload, max_payload_bytes)
    return (None, parsed.error) if parsed.error is not None else (parsed.value, None)


def _parse(payload: bytes, max_payload_bytes: int) -> _Payload:  # noqa: PLR0911
    if len(payload) > max_payload_bytes:
        return _refused(
            f"payload of {len(payload)} bytes exceeds mqtt.max_payload_bytes ({max_payload_bytes})"
        )
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as err:
        return _refused(f"payload is not valid UTF-8 (byte {err.start})")
    if "\x00" in text:
        return _refused("payload contains a NUL character, which PostgreSQL cannot store in JSON")
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        return _Payload(text, text, is_json=False, error=None)
    if _brackets_exceed(text) and _depth(value) > MAX_JSON_DEPTH:
        return _refused(f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
    if "\\u0000" in text and _contains_nul(value):
        return _refused("JSON contains a \\u0000 character, which PostgreSQL cannot store")
    return _Payload(text, value, is_json=True, error=None)


def _refused(error: str) -> _Payload:
    return _Payload("", None, is_json=False, error=error)


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
    parsed = _parse(reading.payload, max_payload_bytes)
    error = parsed.error
    if error is None and "\x00" in reading.topic:
        error = "topic contains a NUL character, which PostgreSQL cannot store"
    if error is not None:
        return dead_letter(reading, agent_id, error, max_payload_bytes)
    # JSON goes in as the sensor wrote it: no second serialisation, and numbers keep
    # their digits (1e999 is a fine jsonb number, though no Python float).
    payload = parsed.text if parsed.is_json else _dumps(parsed.text)
    head = _dumps(
        {"v": ENVELOPE_VERSION, "key": reading.key, "agent_id": agent_id, "topic": reading.topic}
    )
    body = (
        f'{head[:-1]},"payload":{payload},"received_at":"{format_timestamp(reading.received_at)}"}}'
    )
    return Envelope(reading.key, reading.seq, body, False, reading.received_at)


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


def _dumps(body: Any) -> str:
    return json.dumps(body, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
