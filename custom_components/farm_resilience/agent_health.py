"""An agent's health payload (DESIGN.md, "MQTT contract"), read strictly into plain data."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .bounds import Texts, bounded
from .const import HEALTH_VERSION

ROUTES = ("pooler", "direct", "none")
STATUSES = ("ok", "degraded", "down")
# The largest count an agent can send: a PostgreSQL bigint, a Prometheus counter.
# Anything larger is no count, and its digits would not fit in a state (255 characters).
MAX_COUNT = 2**63 - 1
# How much of a rejected value a message quotes.
SHOWN_CHARS = 40


class InvalidHealthError(ValueError):
    """A health payload that must not change what Home Assistant shows; the message says why."""


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentHealth:
    """The figures of one health payload; None is a figure the agent could not know."""

    agent_id: str
    ts: datetime
    status: str
    route: str
    pooler_latency_ms: float | None
    direct_latency_ms: float | None
    queue_depth: int | None
    dlq_depth: int | None
    spool_depth: int | None
    relay_latency_p95_ms: float | None
    relayed_total: int | None
    # At most `bounds.MAX_TEXTS`, each cut short: they reach attributes and reasons.
    problems: tuple[str, ...]
    # The payload as accepted, its problems bounded the same way (diagnostics show it).
    payload: Mapping[str, Any]

    @property
    def has_problem(self) -> bool:
        """Return whether the agent reports anything short of healthy."""
        return self.status != "ok" or bool(self.problems)


def parse_health(raw: str | bytes | bytearray, agent_id: str) -> AgentHealth:
    """Return the health in `raw`, or raise InvalidHealthError naming what is wrong.

    Unknown fields are ignored (the contract lets the agent add them); a known
    field of the wrong type, another version or another agent's id rejects the
    whole payload, because half a payload would show a mix of old and new figures.
    """
    try:
        payload = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as err:
        raise InvalidHealthError(f"not JSON ({err})") from err
    except RecursionError as err:
        raise InvalidHealthError("not JSON (nested too deeply)") from err
    if not isinstance(payload, dict):
        raise InvalidHealthError("not a JSON object")
    version = payload.get("v")
    if version != HEALTH_VERSION or isinstance(version, bool):
        raise InvalidHealthError(
            f"version {shown(version)}, this integration reads {HEALTH_VERSION}"
        )
    if payload.get("agent_id") != agent_id:
        raise InvalidHealthError(f"names agent {shown(payload.get('agent_id'))}")
    backend = _section(payload, "backend")
    queue = _section(payload, "queue")
    relay = _section(payload, "relay")
    problems = _problems(payload.get("problems"))
    return AgentHealth(
        agent_id=agent_id,
        ts=_timestamp(payload.get("ts")),
        status=_choice(payload, "status", STATUSES),
        route=_choice(backend, "route", ROUTES, "backend."),
        pooler_latency_ms=_number(backend, "pooler_latency_ms", "backend."),
        direct_latency_ms=_number(backend, "direct_latency_ms", "backend."),
        queue_depth=_count(queue, "depth", "queue."),
        dlq_depth=_count(queue, "dlq_depth", "queue."),
        spool_depth=_count(relay, "spool_depth", "relay."),
        relay_latency_p95_ms=_number(relay, "e2e_latency_p95_ms", "relay."),
        relayed_total=_count(relay, "relayed_total", "relay."),
        problems=problems,
        payload={**payload, "problems": list(problems)},
    )


def _section(payload: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    """Return a section of the payload, which must be an object."""
    section = payload.get(name)
    if not isinstance(section, dict):
        raise InvalidHealthError(f"{name} is not an object")
    return section


def _timestamp(value: Any) -> datetime:
    """Return `ts` (ISO 8601 UTC ending in Z) as an aware datetime."""
    if not isinstance(value, str) or not value.endswith("Z"):
        raise InvalidHealthError(f"ts {shown(value)} is not an ISO 8601 UTC time")
    try:
        return datetime.fromisoformat(value)
    except ValueError as err:
        raise InvalidHealthError(f"ts {shown(value)} is not an ISO 8601 UTC time") from err


def _choice(section: Mapping[str, Any], key: str, allowed: tuple[str, ...], where: str = "") -> str:
    """Return a field that must be one of `allowed`."""
    value = section.get(key)
    if value not in allowed:
        raise InvalidHealthError(f"{where}{key} {shown(value)} is not one of {', '.join(allowed)}")
    return str(value)


def _number(section: Mapping[str, Any], key: str, where: str) -> float | None:
    """Return a non-negative finite figure, None when unknown (null or absent)."""
    value = section.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidHealthError(f"{where}{key} {shown(value)} is not a number")
    try:
        number = float(value)
    except OverflowError:  # an integer beyond any float
        number = math.inf
    if not math.isfinite(number) or number < 0:
        raise InvalidHealthError(f"{where}{key} {shown(value)} is out of range")
    return number


def _count(section: Mapping[str, Any], key: str, where: str) -> int | None:
    """Return a non-negative whole count, None when unknown (null or absent)."""
    value = section.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_COUNT:
        raise InvalidHealthError(f"{where}{key} {shown(value)} is not a count")
    return value


def shown(value: Any) -> str:
    """Return a rejected value as a message quotes it: its repr, cut short."""
    shown = repr(value)
    return shown if len(shown) <= SHOWN_CHARS else f"{shown[: SHOWN_CHARS - 3]}..."


def _problems(value: Any) -> tuple[str, ...]:
    """Return the problems, a list of plain sentences, bounded in count and length.

    An agent in trouble may list thousands of long problems; Home Assistant shows
    the first ones and how many more there are.
    """
    if not isinstance(value, list) or not all(isinstance(problem, str) for problem in value):
        raise InvalidHealthError("problems is not a list of strings")
    return tuple(bounded([Texts.from_list(value)]))
