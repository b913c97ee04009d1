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
    """How an HTTP endpoint caches; None where the server did not say (or it was not checked)."""

    etag: bool
    cache_control: str | None
    revalidated_304: bool | None
    speedup: float | None
    hit_ratio: float | None
    # How long a cached answer took: the 304, or a full answer a cache says it served.
    cached_ms: float | None = None
    # The cache-invalidation check (`invalidate`): still the old answer after the write?
    stale_after_write: bool | None = None
    fresh_after_write_ms: float | None = None
    # How many probes `hit_ratio` covers: it is judged only on enough of them.
    hit_samples: int = 0

    def as_json(self) -> dict[str, Any]:
        return {
            "etag": self.etag,
            "cache_control": self.cache_control,
            "revalidated_304": self.revalidated_304,
            "speedup": self.speedup,
            "hit_ratio": self.hit_ratio,
            "cached_ms": _rounded(self.cached_ms),
            "stale_after_write": self.stale_after_write,
            "fresh_after_write_ms": _rounded(self.fresh_after_write_ms),
        }


@dataclass(frozen=True, slots=True)
class PoolFigures:
    """A PgBouncer pool as its admin console shows it: the pooler DSN's database and user."""

    pool_size: int | None
    sv_active: int
    sv_idle: int
    cl_active: int
    cl_waiting: int
    maxwait_s: float
    clients: int | None
    max_client_conn: int | None

    @property
    def utilisation(self) -> float | None:
        """Server connections in use over the pool's size, 0-1."""
        if not self.pool_size:
            return None
        return min(1.0, self.sv_active / self.pool_size)

    def as_json(self) -> dict[str, Any]:
        utilisation = self.utilisation
        return {
            "utilisation": None if utilisation is None else round(utilisation, 3),
            "pool_size": self.pool_size,
            "sv_active": self.sv_active,
            "sv_idle": self.sv_idle,
            "cl_active": self.cl_active,
            "cl_waiting": self.cl_waiting,
            "maxwait_s": round(self.maxwait_s, 3),
            "clients": self.clients,
            "max_client_conn": self.max_client_conn,
        }


@dataclass(frozen=True, slots=True)
class PoolReport:
    """What the pooler probe knows of the pool: figures, or None when the pooler shows none."""

    figures: PoolFigures | None
    # Why there are no figures although an admin console is configured.
    unknown: str | None = None


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """One probe's verdict: `detail` says what was seen, or what failed, in a few words."""

    name: str
    kind: ProbeKind
    ok: bool
    latency_ms: float | None
    detail: str
    cache: CacheFigures | None = None
    # The pooler probe's pool (`pool` in its JSON, null when the pooler shows none).
    pool: PoolReport | None = None

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
        if self.pool is not None:
            figures = self.pool.figures
            body["pool"] = None if figures is None else figures.as_json()
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
    # What the broker refused or downgraded of the readings' subscription, in words.
    subscription_problems: tuple[str, ...] = ()

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
