"""What probes find out, as plain values: a result per probe plus the figures some measure."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


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
    kind: str
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
    """The last hour of finished tasks; None when nothing finished or failed in that hour."""

    archived: int
    dead_lettered: int
    processing_p50_s: float | None
    processing_p95_s: float | None
    task_success_pct: float | None


@dataclass(frozen=True, slots=True)
class ProbeRound:
    """Everything one run of the probes found out."""

    databases: tuple[ProbeResult, ...]
    queue: QueueFigures | None
    tasks: TaskFigures | None
    results: tuple[ProbeResult, ...]
    broker_connected: bool

    def result(self, kind: str) -> ProbeResult | None:
        """The first result of a kind (`queue`, `tasks`, `mqtt`), if that probe ran."""
        return next((result for result in self.results if result.kind == kind), None)


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def failure(name: str, kind: str, detail: str) -> ProbeResult:
    """A probe that could not get an answer."""
    return ProbeResult(name, kind, False, None, detail)
