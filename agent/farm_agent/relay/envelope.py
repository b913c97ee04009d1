"""The queue envelope, built in one place: a reading, or a dead letter with its reason."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

from farm_agent.timestamps import format_timestamp

ENVELOPE_VERSION = 1
# Deeper JSON is kept out of the queue: PostgreSQL parses jsonb recursively.
MAX_JSON_DEPTH = 64
# PostgreSQL's numeric, which jsonb keeps numbers in, holds at most 131,072 digits
# before the decimal point (the leading digit's exponent at most 131,071) and 16,383
# after it; beyond, jsonb refuses the document ("value overflows numeric format").
# Measured on PostgreSQL 15: 1e131071 and 1e-16383 pass, 1e131072, 1e-16384 and
# 0.5e-16383 do not; an exponent of 2**30 - 1 or more is refused whatever the digits.
JSONB_MAX_LEADING_EXPONENT = 131_071
JSONB_MAX_FRACTION_DIGITS = 16_383
JSONB_MAX_EXPONENT = 2**30 - 1
# Only a number with an exponent of 1000 or more, or a payload long enough to hold
# 16,384 digits, can be out of that range: the rest skip the closer look.
_LARGE_EXPONENT = re.compile(r"[eE][+-]?0*[1-9][0-9]{3}")
_LONG_ENOUGH_FOR_DIGITS = JSONB_MAX_FRACTION_DIGITS + 1
# A \u escape of a UTF-16 surrogate: jsonb refuses one that is not half of a pair.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")


@dataclass(frozen=True, slots=True)
class SpooledReading:
    """A reading as the spool holds it: the raw MQTT message and when it arrived."""

    seq: int
    key: str
    topic: str
    payload: bytes
    received_at: float
    # The size the payload arrived with; larger than `payload` when only its head was kept.
    size: int


@dataclass(frozen=True, slots=True)
class SpooledBatch:
    """The oldest readings in the spool, all keyed in one key space."""

    key_space: str
    readings: list[SpooledReading]


@dataclass(frozen=True, slots=True)
class Envelope:
    """One PGMQ message, already serialised; `dead_letter` tells which queue it belongs to."""

    key: str
    seq: int
    body: str
    dead_letter: bool
    received_at: float


class _Payload(NamedTuple):
    text: str
    is_json: bool
    error: str | None


def _parse(payload: bytes, max_payload_bytes: int, size: int) -> _Payload:  # noqa: PLR0911
    if size > max_payload_bytes:
        return _refused(
            f"payload of {size} bytes exceeds mqtt.max_payload_bytes ({max_payload_bytes})"
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
        return _Payload(text, is_json=False, error=None)
    if _brackets_exceed(text) and _depth(value) > MAX_JSON_DEPTH:
        return _refused(f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
    if "\\u0000" in text and _any_string(value, _holds_nul):
        return _refused("JSON contains a \\u0000 character, which PostgreSQL cannot store")
    refused = _refused_by_jsonb(text, value)
    if refused is not None:
        return _refused(refused)
    return _Payload(text, is_json=True, error=None)


def _refused_by_jsonb(text: str, value: Any) -> str | None:
    """Why PostgreSQL's jsonb would refuse JSON that Python accepts, or None."""
    if _SURROGATE_ESCAPE.search(text) and _any_string(value, _SURROGATE.search):
        return (
            "JSON contains a lone UTF-16 surrogate (\\ud800-\\udfff not in a pair), "
            "which PostgreSQL refuses"
        )
    if len(text) >= _LONG_ENOUGH_FOR_DIGITS or _LARGE_EXPONENT.search(text):
        out_of_range: list[str] = []

        def check(number: str) -> float:
            if not out_of_range and numeric_out_of_range(number):
                out_of_range.append(number)
            return 0.0

        json.loads(text, parse_float=check, parse_constant=_reject_constant)
        if out_of_range:
            shown = out_of_range[0] if len(out_of_range[0]) <= 40 else out_of_range[0][:37] + "..."
            return (
                f"JSON number {shown} is out of PostgreSQL's numeric range (at most "
                f"{JSONB_MAX_LEADING_EXPONENT + 1} digits before the decimal point and "
                f"{JSONB_MAX_FRACTION_DIGITS} after it)"
            )
    return None


def numeric_out_of_range(number: str) -> bool:
    """Whether PostgreSQL's numeric refuses this JSON number (`-?int(.frac)?([eE][+-]?exp)?`)."""
    mantissa, _, exponent_text = number.lower().partition("e")
    exponent_digits = exponent_text.lstrip("+-").lstrip("0")
    if len(exponent_digits) > len(str(JSONB_MAX_EXPONENT)):
        return True
    exponent = int(exponent_text) if exponent_text else 0
    if abs(exponent) >= JSONB_MAX_EXPONENT:
        return True
    whole, _, fraction = mantissa.lstrip("-").partition(".")
    if len(fraction) - exponent > JSONB_MAX_FRACTION_DIGITS:
        return True
    leading = whole.lstrip("0")
    if leading:
        return len(leading) - 1 + exponent > JSONB_MAX_LEADING_EXPONENT
    significant = fraction.lstrip("0")
    if not significant:
        return False  # zero: only its digits after the point count
    return exponent - (len(fraction) - len(significant)) - 1 > JSONB_MAX_LEADING_EXPONENT


def _any_string(value: Any, test: Callable[[str], object]) -> bool:
    """Whether `test` holds for a string anywhere in a JSON value, its keys included."""
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, str) and test(node):
            return True
        if isinstance(node, dict):
            stack.extend(node.keys())
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return False


def _holds_nul(text: str) -> bool:
    return "\x00" in text


def _refused(error: str) -> _Payload:
    return _Payload("", is_json=False, error=error)


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


def build_envelope(reading: SpooledReading, agent_id: str, max_payload_bytes: int) -> Envelope:
    """The queue envelope of a reading, or its dead-letter envelope when the payload is refused."""
    parsed = _parse(reading.payload, max_payload_bytes, reading.size)
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
        "payload_size": reading.size,
    }
    kept = reading.payload[:max_payload_bytes]
    if len(kept) < reading.size:
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
