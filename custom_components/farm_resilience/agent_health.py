"""An agent's health payload (DESIGN.md, "MQTT contract"), read strictly into plain data."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .agent_tasks import SloReport, TaskFigures, parse_slo, parse_tasks
from .bounds import Texts, bounded
from .const import HEALTH_VERSION
from .health_fields import InvalidHealthError, choice, count, number, section, shown, text

__all__ = ["ROUTES", "AgentHealth", "InvalidHealthError", "parse_health", "shown"]

# The longest version text an agent may report (Home Assistant shows it as the device's).
MAX_VERSION_CHARS = 64

ROUTES = ("pooler", "direct", "none")
STATUSES = ("ok", "degraded", "down")


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
    # The agent's software version; None from agents that do not report it (before 0.2).
    version: str | None
    # The task queues and workers; None when not reported or unknown.
    tasks: TaskFigures | None
    # The agent's service level objectives; None when not reported or unknown.
    slo: SloReport | None
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
    backend = section(payload, "backend")
    queue = section(payload, "queue")
    relay = section(payload, "relay")
    problems = _problems(payload.get("problems"))
    return AgentHealth(
        agent_id=agent_id,
        ts=_timestamp(payload.get("ts")),
        status=choice(payload, "status", STATUSES),
        route=choice(backend, "route", ROUTES, "backend."),
        pooler_latency_ms=number(backend, "pooler_latency_ms", "backend."),
        direct_latency_ms=number(backend, "direct_latency_ms", "backend."),
        queue_depth=count(queue, "depth", "queue."),
        dlq_depth=count(queue, "dlq_depth", "queue."),
        spool_depth=count(relay, "spool_depth", "relay."),
        relay_latency_p95_ms=number(relay, "e2e_latency_p95_ms", "relay."),
        relayed_total=count(relay, "relayed_total", "relay."),
        version=None
        if payload.get("version") is None
        else text(payload, "version", "", MAX_VERSION_CHARS),
        tasks=parse_tasks(payload),
        slo=parse_slo(payload),
        problems=problems,
        payload={**payload, "problems": list(problems)},
    )


def _timestamp(value: Any) -> datetime:
    """Return `ts` (ISO 8601 UTC ending in Z) as an aware datetime."""
    if not isinstance(value, str) or not value.endswith("Z"):
        raise InvalidHealthError(f"ts {shown(value)} is not an ISO 8601 UTC time")
    try:
        return datetime.fromisoformat(value)
    except ValueError as err:
        raise InvalidHealthError(f"ts {shown(value)} is not an ISO 8601 UTC time") from err


def _problems(value: Any) -> tuple[str, ...]:
    """Return the problems, a list of plain sentences, bounded in count and length.

    An agent in trouble may list thousands of long problems; Home Assistant shows
    the first ones and how many more there are.
    """
    if not isinstance(value, list) or not all(isinstance(problem, str) for problem in value):
        raise InvalidHealthError("problems is not a list of strings")
    return tuple(bounded([Texts.from_list(value)]))
