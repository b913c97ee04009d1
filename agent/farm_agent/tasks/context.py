"""What a handler may use besides its task: the worker's database and MQTT connections."""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass

from farm_agent.config import AgentConfig
from farm_agent.mqtt import ConfirmedPublisher
from farm_agent.tasks.database import TaskDatabase


@dataclass(frozen=True, slots=True)
class TaskContext:
    """The running worker's resources, shared by all its handlers."""

    config: AgentConfig
    worker_id: str
    database: TaskDatabase
    mqtt: ConfirmedPublisher


_CURRENT: ContextVar[TaskContext] = ContextVar("farm_agent_task_context")


def current_context() -> TaskContext:
    """The context of the worker running this handler (also on a plain handler's thread)."""
    try:
        return _CURRENT.get()
    except LookupError:
        raise RuntimeError(
            "no task context: this runs only inside a handler called by `farm-agent work`"
        ) from None


def set_context(context: TaskContext) -> None:
    """Make `context` the one handlers started from here on see."""
    _CURRENT.set(context)
