"""An agent's task types, workers and objectives as entity attributes: plain, bounded data."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from .agent_health import AgentHealth

# The objective statuses a sensor shows; the agent's "unknown" is the sensor's unknown.
SLO_SHOWN_STATUSES = ("ok", "at_risk", "breached")


def task_type_attributes(health: AgentHealth) -> dict[str, Any]:
    """Return each task type's figures (the first ones by name) and how many types there are."""
    tasks = health.tasks
    if tasks is None:
        return {}
    return {
        "types": {
            figures.name: {key: value for key, value in asdict(figures).items() if key != "name"}
            for figures in tasks.by_type
        },
        "types_total": tasks.types,
    }


def worker_attributes(health: AgentHealth) -> dict[str, Any]:
    """Return the workers (the first ones) as the agent last saw them."""
    tasks = health.tasks
    if tasks is None or tasks.workers is None:
        return {}
    return {"workers": [asdict(worker) for worker in tasks.workers]}


def objective_attributes(health: AgentHealth) -> dict[str, Any]:
    """Return the agent's objectives and their window."""
    slo = health.slo
    if slo is None:
        return {}
    return {
        "window_days": slo.window_days,
        "objectives": [asdict(objective) for objective in slo.objectives],
    }
