"""The task figures judged against the targets: one check per figure, each a plain sentence.

Checks, over the health's `tasks` section (the last hour):

- `task_depth`: tasks in the priority queues together <= `thresholds.queue_depth`;
- `task_dead_letters`: the tasks' dead-letter queue <= `thresholds.dlq_depth`;
- `task_workers`: no worker silent for ALIVE_HEARTBEATS heartbeats (a worker that said
  goodbye on SIGTERM is not silent; one that died stays listed, and silent, until an
  hour after its last beat);
- `task_success <type>`: success % >= `thresholds.task_success`, judged only on evidence:
  at least MIN_FINISHED tasks of the type finished (succeeded or dead-lettered) in the
  hour, the same minimum Home Assistant's hub uses for commands. Below it the check says
  so and passes: 1 failure in 3 tasks says little, and any dead letter already shows in
  `task_dead_letters`;
- `task_p95 <type>`: p95 from submission to done <= `thresholds.processing_s` (any count:
  a task that took longer than the target did take longer).

`ok` is None for a check that had nothing to judge. `farm-agent check` shows every check
as a row; the failed ones are the health's problems.
"""

from __future__ import annotations

from dataclasses import dataclass

from farm_agent.config import Thresholds
from farm_agent.health.wording import figure as _figure
from farm_agent.tasks import ALIVE_HEARTBEATS, TaskHealth, TaskTypeFigures, WorkerFigures

MIN_FINISHED = 20
# Silent workers named one by one up to this many; more are summed up in one sentence.
NAMED_WORKERS = 3


@dataclass(frozen=True, slots=True)
class TaskCheck:
    """One judged figure: `ok` None when there was nothing to judge; `detail` says what was seen."""

    name: str
    ok: bool | None
    detail: str


def task_checks(section: TaskHealth, thresholds: Thresholds) -> tuple[TaskCheck, ...]:
    """Every check of the section, in a stable order: queues, workers, then type by type."""
    checks = [
        _depth(section, thresholds),
        _dead_letters(section, thresholds),
        _workers(section),
    ]
    for name, figures in section.by_type.items():
        checks.append(_success(name, figures, thresholds))
        checks.append(_p95(name, figures, thresholds))
    return tuple(checks)


def task_problems(checks: tuple[TaskCheck, ...]) -> list[str]:
    """The failed checks' sentences, for the health's `problems`."""
    return [check.detail for check in checks if check.ok is False]


def _depth(section: TaskHealth, thresholds: Thresholds) -> TaskCheck:
    total = section.depth_total
    if total is None:
        return TaskCheck("task_depth", None, "no task queue exists yet")
    each = ", ".join(f"{priority} {_count(depth)}" for priority, depth in section.depth.items())
    if total > thresholds.queue_depth:
        return TaskCheck(
            "task_depth", False, f"task queue depth {total} > {thresholds.queue_depth} ({each})"
        )
    return TaskCheck(
        "task_depth", True, f"{total} tasks queued ({each}), alert above {thresholds.queue_depth}"
    )


def _dead_letters(section: TaskHealth, thresholds: Thresholds) -> TaskCheck:
    depth = section.dlq_depth
    if depth is None:
        return TaskCheck(
            "task_dead_letters", None, "the tasks' dead-letter queue does not exist yet"
        )
    if depth > thresholds.dlq_depth:
        return TaskCheck(
            "task_dead_letters",
            False,
            f"task dead-letter queue holds {depth} > {thresholds.dlq_depth}",
        )
    return TaskCheck(
        "task_dead_letters", True, f"{depth} task dead letters, alert above {thresholds.dlq_depth}"
    )


def _workers(section: TaskHealth) -> TaskCheck:
    workers = section.workers
    silent = [worker for worker in workers if worker.silent]
    alive = section.workers_alive
    if not workers:
        return TaskCheck("task_workers", None, "no worker heard from in the last hour")
    if not silent:
        stopped = len(workers) - alive
        said = f", {stopped} stopped" if stopped else ""
        return TaskCheck("task_workers", True, f"{alive} alive{said}")
    if len(silent) <= NAMED_WORKERS:
        named = "; ".join(_silent(worker) for worker in silent)
        return TaskCheck("task_workers", False, f"{named}; {_alive(alive)}")
    shown = ", ".join(worker.id for worker in silent[:NAMED_WORKERS])
    return TaskCheck(
        "task_workers",
        False,
        f"{len(silent)} workers silent for {ALIVE_HEARTBEATS} heartbeats or more: {shown} "
        f"and {len(silent) - NAMED_WORKERS} more; {_alive(alive)}",
    )


def _alive(count: int) -> str:
    return f"{count} worker{'' if count == 1 else 's'} alive"


def _silent(worker: WorkerFigures) -> str:
    beats = f" (heartbeat every {_figure(worker.heartbeat_s)} s)" if worker.heartbeat_s else ""
    return f"worker {worker.id} silent for {_figure(worker.last_seen_s)} s{beats}"


def _success(name: str, figures: TaskTypeFigures, thresholds: Thresholds) -> TaskCheck:
    check = f"task_success {name}"
    finished = figures.succeeded + figures.dead_lettered
    success, target = figures.success_pct, thresholds.task_success
    if success is None:
        return TaskCheck(check, None, "nothing finished in the last hour")
    seen = f"{_figure(success)} %: {figures.succeeded} of {finished} succeeded in the last hour"
    if finished < MIN_FINISHED:
        return TaskCheck(
            check, None, f"{seen}; fewer than {MIN_FINISHED} finished: too few to judge"
        )
    if success < target:
        return TaskCheck(
            check,
            False,
            f"task {name} success {_figure(success)} % < {_figure(target)} % "
            f"({figures.succeeded} of {finished} in the last hour)",
        )
    return TaskCheck(check, True, f"{seen}, target {_figure(target)} %")


def _p95(name: str, figures: TaskTypeFigures, thresholds: Thresholds) -> TaskCheck:
    check = f"task_p95 {name}"
    p95, limit = figures.p95_s, thresholds.processing_s
    if p95 is None:
        return TaskCheck(check, None, "none succeeded in the last hour")
    if p95 > limit:
        return TaskCheck(check, False, f"task {name} p95 {_figure(p95)} s > {_figure(limit)} s")
    return TaskCheck(
        check, True, f"{_figure(p95)} s from submission to done, target {_figure(limit)} s"
    )


def _count(depth: int | None) -> str:
    return "-" if depth is None else str(depth)
