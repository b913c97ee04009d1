"""Background tasks on PGMQ: submit them, run them with `farm-agent work`, read their figures.

Handlers take a `Task`; raise `PermanentError` for a task that can never succeed. The
public functions the health report, `queue dlq` and Home Assistant wiring use:
`read_task_figures` (the health `tasks` section), `read_task_depths`, and
`list_dead_letters` / `requeue_dead_letters` / `purge_dead_letters`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from farm_agent.tasks.context import TaskContext, current_context
    from farm_agent.tasks.dead_letters import (
        DeadLetter,
        Requeued,
        count_dead_letters,
        list_dead_letters,
        purge_dead_letters,
        requeue_dead_letters,
    )
    from farm_agent.tasks.figures import (
        ALIVE_HEARTBEATS,
        TaskHealth,
        TaskTypeFigures,
        WorkerFigures,
        read_task_depths,
        read_task_figures,
    )
    from farm_agent.tasks.submission import submit, submit_many, task_request
    from farm_agent.tasks.task import PermanentError, Task, TaskInputError

# Imported on first use, so the package stays light for `farm-agent validate` and config.
_HOMES = {
    "TaskContext": "context",
    "current_context": "context",
    "DeadLetter": "dead_letters",
    "Requeued": "dead_letters",
    "count_dead_letters": "dead_letters",
    "list_dead_letters": "dead_letters",
    "purge_dead_letters": "dead_letters",
    "requeue_dead_letters": "dead_letters",
    "ALIVE_HEARTBEATS": "figures",
    "TaskHealth": "figures",
    "TaskTypeFigures": "figures",
    "WorkerFigures": "figures",
    "read_task_depths": "figures",
    "read_task_figures": "figures",
    "submit": "submission",
    "submit_many": "submission",
    "task_request": "submission",
    "PermanentError": "task",
    "Task": "task",
    "TaskInputError": "task",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value
    return value


__all__ = [
    "ALIVE_HEARTBEATS",
    "DeadLetter",
    "PermanentError",
    "Requeued",
    "Task",
    "TaskContext",
    "TaskHealth",
    "TaskInputError",
    "TaskTypeFigures",
    "WorkerFigures",
    "count_dead_letters",
    "current_context",
    "list_dead_letters",
    "purge_dead_letters",
    "read_task_depths",
    "read_task_figures",
    "requeue_dead_letters",
    "submit",
    "submit_many",
    "task_request",
]
