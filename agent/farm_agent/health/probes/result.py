"""What probes find out, as plain values: a result per probe plus the figures some measure."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Generic, TypeVar

import asyncpg

from farm_agent.config import BackendConfig
from farm_agent.tasks import TaskHealth

_F = TypeVar("_F")


class ProbeKind(StrEnum):
    """What a probe looks at; the `kind` of each probe in the health JSON."""

    POSTGRES = "postgres"
    QUEUE = "queue"
    TASKS = "tasks"
    HTTP = "http"
    MQTT = "mqtt"


@dataclass(frozen=True, slots=True)
class CacheFigures:
    """How an HTTP endpoint caches; None where the server did not say."""

    etag: bool
    cache_control: str | None
    revalidated_304: bool | None
    speedup: float | None
    hit_ratio: float | None

    def as_json(self) -> dict[str, Any]:
        return {
            "etag": self.etag,
            "cache_control": self.cache_control,
            "revalidated_304": self.revalidated_304,
            "speedup": self.speedup,
            "hit_ratio": self.hit_ratio,
        }


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """One probe's verdict: `detail` says what was seen, or what failed, in a few words."""

    name: str
    kind: ProbeKind
    ok: bool
    latency_ms: float | None
    detail: str
    cache: CacheFigures | None = None

    def as_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "name": self.name,
            "kind": self.kind,
            "ok": self.ok,
            "latency_ms": _rounded(self.latency_ms),
            "detail": self.detail,
        }
        if self.cache is not None:
            body["cache"] = self.cache.as_json()
        return body


@dataclass(frozen=True, slots=True)
class QueueFigures:
    """Depth and oldest message of the queue and its dead-letter queue, per pgmq.metrics."""

    depth: int
    oldest_age_s: float | None
    dlq_depth: int
    dlq_oldest_age_s: float | None


@dataclass(frozen=True, slots=True)
class TaskFigures:
    """The last hour of finished tasks; None when nothing finished or failed in that hour.

    `archived` and `dead_lettered` are the relay queue's (its archive and dead letters;
    None when that queue does not exist but the task queues do). The processing figures
    are the task workers' when they counted any finished task in the hour
    (`from_workers`), else the relay queue's. `section` is the health's `tasks` section:
    None when none of the task queues exists.
    """

    archived: int | None
    dead_lettered: int | None
    processing_p50_s: float | None
    processing_p95_s: float | None
    task_success_pct: float | None
    section: TaskHealth | None = None
    from_workers: bool = False


@dataclass(frozen=True, slots=True)
class ProbeRound:
    """Everything one run of the probes found out."""

    databases: tuple[ProbeResult, ...]
    queue: QueueFigures | None
    tasks: TaskFigures | None
    results: tuple[ProbeResult, ...]
    broker_connected: bool

    def result(self, kind: ProbeKind) -> ProbeResult | None:
        """The first result of a kind (`queue`, `tasks`, `mqtt`), if that probe ran."""
        return next((result for result in self.results if result.kind == kind), None)


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def failure(name: str, kind: ProbeKind, detail: str) -> ProbeResult:
    """A probe that could not get an answer."""
    return ProbeResult(name, kind, False, None, detail)


@dataclass(frozen=True, slots=True)
class FigureProbe(Generic[_F]):
    """A probe that reads figures over a database connection (the queue's, the tasks')."""

    name: str
    kind: ProbeKind
    read: Callable[[asyncpg.Connection, BackendConfig], Awaitable[_F]]
    # What to say when the queue's tables do not exist (UndefinedTableError).
    missing: Callable[[BackendConfig], str]
    # The figures in a few words: the result's detail.
    describe: Callable[[_F], str]
