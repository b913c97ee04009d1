"""What the SLO history holds, as plain values: a series' minute, the relay's, a judgement."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from farm_agent.health.slo import Events

_N = TypeVar("_N", int, float)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one series saw in a round or a minute: events, and latencies as a histogram."""

    good: int = 0
    total: int = 0
    # farm_agent.histogram buckets of the latency in seconds -> how many.
    latency: Mapping[int, int] = field(default_factory=dict)

    def __add__(self, other: Outcome) -> Outcome:
        latency = dict(self.latency)
        for bucket, count in other.latency.items():
            latency[bucket] = latency.get(bucket, 0) + count
        return Outcome(self.good + other.good, self.total + other.total, latency)

    @property
    def events(self) -> Events:
        return Events(self.good, self.total)


@dataclass(frozen=True, slots=True)
class RelayFigures:
    """The relay's figures in a minute: the largest seen of each; None when never known."""

    queue_depth: int | None
    spool_depth: int | None
    relay_p95_ms: float | None

    def __add__(self, other: RelayFigures) -> RelayFigures:
        return RelayFigures(
            _largest(self.queue_depth, other.queue_depth),
            _largest(self.spool_depth, other.spool_depth),
            _largest(self.relay_p95_ms, other.relay_p95_ms),
        )


@dataclass(frozen=True, slots=True)
class Judgement:
    """An objective as last judged in a minute."""

    status: str
    sli_pct: float | None
    budget_remaining_pct: float | None


@dataclass(frozen=True, slots=True)
class SeriesMinute:
    """One row of the history: a series' outcome in a minute (minutes since the epoch)."""

    minute: int
    series: str
    outcome: Outcome


def histogram_text(outcome: Outcome) -> str:
    """The latency histogram as stored: {"bucket": count}, like the task figures'."""
    return json.dumps({str(bucket): count for bucket, count in sorted(outcome.latency.items())})


def histogram_from(text: str) -> dict[int, int]:
    return {int(bucket): int(count) for bucket, count in json.loads(text).items()}


def judgement_json(judgement: Judgement) -> dict[str, Any]:
    return {
        "status": judgement.status,
        "sli_pct": judgement.sli_pct,
        "budget_remaining_pct": judgement.budget_remaining_pct,
    }


def _largest(first: _N | None, second: _N | None) -> _N | None:
    if first is None:
        return second
    if second is None:
        return first
    return max(first, second)
