"""An agent's task figures and service levels (DESIGN.md, "Tasks" and "SLOs"), read strictly.

Both sections are optional: an older agent sends neither, and either may be null
(unknown). What is kept for attributes is bounded (`bounds.MAX_TEXTS` task types,
workers and objectives); the figures over all of them (success, slowest p95,
workers alive) are computed from everything the agent sent.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .bounds import MAX_CHARS, MAX_TEXTS
from .health_fields import (
    InvalidHealthError,
    choice,
    count,
    flag,
    number,
    optional_section,
    shown,
    text,
)

PRIORITIES = ("high", "normal", "low")
# A task type as the task envelope allows it.
TASK_TYPE = re.compile(r"^[a-z0-9_.-]{1,64}$")
SLO_STATUSES = ("ok", "at_risk", "breached", "unknown")
# Worst first: the status an agent's objectives show together.
_STATUS_RANK = {"breached": 0, "at_risk": 1, "ok": 2, "unknown": 3}


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskTypeFigures:
    """One task type's figures over the agent's last hour."""

    name: str
    succeeded: int | None
    failed: int | None
    retried: int | None
    dead_lettered: int | None
    success_pct: float | None
    p50_s: float | None
    p95_s: float | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Worker:
    """One task worker as the agent last saw it."""

    id: str
    last_seen_s: float | None
    alive: bool
    running: int | None
    concurrency: int | None


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskFigures:
    """The `tasks` section: queue depths, dead letters, throughput, types and workers."""

    depth: dict[str, int | None]  # priority -> waiting tasks
    dlq_depth: int | None
    throughput_per_s: float | None
    by_type: tuple[TaskTypeFigures, ...]  # the first MAX_TEXTS, by name
    types: int
    # Over every type: succeeded / (succeeded + dead-lettered), the contract's success.
    success_pct: float | None
    # The slowest type's 95th percentile (percentiles of types do not add up to one).
    processing_p95_s: float | None
    workers: tuple[Worker, ...] | None  # the first MAX_TEXTS; None: unknown
    workers_alive: int | None


@dataclass(frozen=True, slots=True, kw_only=True)
class SloObjective:
    """One service level objective as the agent judges it."""

    name: str
    target_pct: float
    sli_pct: float | None
    budget_remaining_pct: float | None
    burn_rate_1h: float | None
    burn_rate_6h: float | None
    status: str


@dataclass(frozen=True, slots=True, kw_only=True)
class SloReport:
    """The `slo` section: the agent's objectives over its window."""

    window_days: float | None
    objectives: tuple[SloObjective, ...]  # the first MAX_TEXTS

    @property
    def status(self) -> str:
        """Return the worst status of the objectives (unknown only when none is known)."""
        statuses = [objective.status for objective in self.objectives]
        return min(statuses, key=_STATUS_RANK.__getitem__, default="unknown")

    @property
    def budget_remaining_pct(self) -> float | None:
        """Return the error budget left of the objective that has the least."""
        budgets = [objective.budget_remaining_pct for objective in self.objectives]
        return min((budget for budget in budgets if budget is not None), default=None)


def parse_tasks(payload: Mapping[str, Any]) -> TaskFigures | None:
    """Return the `tasks` section; None when absent or null."""
    tasks = optional_section(payload, "tasks")
    if tasks is None:
        return None
    depth = optional_section(tasks, "depth", "tasks.")
    types = _task_types(tasks.get("by_type"))
    succeeded = sum(t.succeeded or 0 for t in types)
    finished = succeeded + sum(t.dead_lettered or 0 for t in types)
    p95s = [t.p95_s for t in types if t.p95_s is not None]
    workers = _workers(tasks.get("workers"))
    return TaskFigures(
        depth={
            priority: None if depth is None else count(depth, priority, "tasks.depth.")
            for priority in PRIORITIES
        },
        dlq_depth=count(tasks, "dlq_depth", "tasks."),
        throughput_per_s=number(tasks, "throughput_per_s", "tasks."),
        by_type=tuple(types[:MAX_TEXTS]),
        types=len(types),
        success_pct=100.0 * succeeded / finished if finished else None,
        processing_p95_s=max(p95s, default=None),
        workers=None if workers is None else tuple(workers[:MAX_TEXTS]),
        workers_alive=None if workers is None else sum(worker.alive for worker in workers),
    )


def parse_slo(payload: Mapping[str, Any]) -> SloReport | None:
    """Return the `slo` section; None when absent or null."""
    slo = optional_section(payload, "slo")
    if slo is None:
        return None
    objectives = slo.get("objectives")
    if objectives is None:
        objectives = []
    if not isinstance(objectives, list):
        raise InvalidHealthError("slo.objectives is not a list")
    return SloReport(
        window_days=number(slo, "window_days", "slo."),
        objectives=tuple(
            _objective(objective, f"slo.objectives[{n}].") for n, objective in enumerate(objectives)
        )[:MAX_TEXTS],
    )


def _task_types(value: Any) -> list[TaskTypeFigures]:
    """Return the figures per task type, by name; null: none known."""
    if value is None:
        return []
    if not isinstance(value, dict):
        raise InvalidHealthError("tasks.by_type is not an object")
    types = []
    for name, figures in sorted(value.items()):
        if not TASK_TYPE.match(name):
            raise InvalidHealthError(f"tasks.by_type has type {shown(name)}")
        if not isinstance(figures, dict):
            raise InvalidHealthError(f"tasks.by_type.{name} is not an object")
        where = f"tasks.by_type.{name}."
        types.append(
            TaskTypeFigures(
                name=name,
                succeeded=count(figures, "succeeded", where),
                failed=count(figures, "failed", where),
                retried=count(figures, "retried", where),
                dead_lettered=count(figures, "dead_lettered", where),
                success_pct=number(figures, "success_pct", where, highest=100.0),
                p50_s=number(figures, "p50_s", where),
                p95_s=number(figures, "p95_s", where),
            )
        )
    return types


def _workers(value: Any) -> list[Worker] | None:
    """Return the workers; None when unknown (null)."""
    if value is None:
        return None
    if not isinstance(value, list):
        raise InvalidHealthError("tasks.workers is not a list")
    workers = []
    for n, worker in enumerate(value):
        where = f"tasks.workers[{n}]."
        if not isinstance(worker, dict):
            raise InvalidHealthError(f"tasks.workers[{n}] is not an object")
        workers.append(
            Worker(
                id=text(worker, "id", where, MAX_CHARS),
                last_seen_s=number(worker, "last_seen_s", where),
                alive=flag(worker, "alive", where),
                running=count(worker, "running", where),
                concurrency=count(worker, "concurrency", where),
            )
        )
    return workers


def _objective(value: Any, where: str) -> SloObjective:
    """Return one objective of the `slo` section."""
    if not isinstance(value, dict):
        raise InvalidHealthError(f"{where.rstrip('.')} is not an object")
    target = number(value, "target_pct", where, highest=100.0)
    if target is None or target <= 0:
        raise InvalidHealthError(
            f"{where}target_pct {shown(value.get('target_pct'))} is not a percentage above 0"
        )
    return SloObjective(
        name=text(value, "name", where, 64),
        target_pct=target,
        sli_pct=number(value, "sli_pct", where, highest=100.0),
        # Negative once the budget is overspent, as the agent may report it.
        budget_remaining_pct=number(value, "budget_remaining_pct", where, lowest=-float("inf")),
        burn_rate_1h=number(value, "burn_rate_1h", where),
        burn_rate_6h=number(value, "burn_rate_6h", where),
        status=choice(value, "status", SLO_STATUSES, where),
    )
