"""Readers of an agent's health payload: each returns one field or raises naming it.

The rules every reader follows (docs/home-assistant.md, "Status and health"): a
figure that cannot be known is null (None here), never a made-up zero; a known
field of the wrong type or out of range rejects the whole payload; a message
quotes at most `SHOWN_CHARS` characters of a rejected value.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

# The largest count an agent can send: a PostgreSQL bigint, a Prometheus counter.
# Anything larger is no count, and its digits would not fit in a state (255 characters).
MAX_COUNT = 2**63 - 1
# How much of a rejected value a message quotes.
SHOWN_CHARS = 40


class InvalidHealthError(ValueError):
    """A health payload that must not change what Home Assistant shows; the message says why."""


def shown(value: Any) -> str:
    """Return a rejected value as a message quotes it: its repr, cut short."""
    shown = repr(value)
    return shown if len(shown) <= SHOWN_CHARS else f"{shown[: SHOWN_CHARS - 3]}..."


def section(payload: Mapping[str, Any], name: str, where: str = "") -> Mapping[str, Any]:
    """Return a section of the payload, which must be an object."""
    found = payload.get(name)
    if not isinstance(found, dict):
        raise InvalidHealthError(f"{where}{name} is not an object")
    return found


def optional_section(
    payload: Mapping[str, Any], name: str, where: str = ""
) -> Mapping[str, Any] | None:
    """Return a section that may be null or absent (None: unknown), else must be an object."""
    if payload.get(name) is None:
        return None
    return section(payload, name, where)


def choice(section: Mapping[str, Any], key: str, allowed: tuple[str, ...], where: str = "") -> str:
    """Return a field that must be one of `allowed`."""
    value = section.get(key)
    if value not in allowed:
        raise InvalidHealthError(f"{where}{key} {shown(value)} is not one of {', '.join(allowed)}")
    return str(value)


def number(
    section: Mapping[str, Any],
    key: str,
    where: str,
    *,
    lowest: float = 0.0,
    highest: float = math.inf,
) -> float | None:
    """Return a finite figure within [lowest, highest], None when unknown (null or absent)."""
    value = section.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidHealthError(f"{where}{key} {shown(value)} is not a number")
    try:
        figure = float(value)
    except OverflowError:  # an integer beyond any float
        figure = math.inf
    if not math.isfinite(figure) or not lowest <= figure <= highest:
        raise InvalidHealthError(f"{where}{key} {shown(value)} is out of range")
    return figure


def count(section: Mapping[str, Any], key: str, where: str) -> int | None:
    """Return a non-negative whole count, None when unknown (null or absent)."""
    value = section.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_COUNT:
        raise InvalidHealthError(f"{where}{key} {shown(value)} is not a count")
    return value


def text(section: Mapping[str, Any], key: str, where: str, max_chars: int) -> str:
    """Return a field that must be a non-empty text of at most `max_chars` characters."""
    value = section.get(key)
    if not isinstance(value, str) or not 0 < len(value) <= max_chars:
        raise InvalidHealthError(f"{where}{key} {shown(value)} is not a text of 1-{max_chars}")
    return value


def flag(section: Mapping[str, Any], key: str, where: str) -> bool:
    """Return a field that must be true or false."""
    value = section.get(key)
    if not isinstance(value, bool):
        raise InvalidHealthError(f"{where}{key} {shown(value)} is not true or false")
    return value
