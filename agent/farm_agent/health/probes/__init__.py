"""Probes: each one looks at one part of the backend and returns a result, never raises.

One module per kind: `postgres` (each route; `pool` names exhaustion and reads
PgBouncer's admin console), `queue` (depths through pgmq.metrics), `tasks` (processing
time and success from the archive), `http` (endpoints and their caching; `cache` checks
invalidation after a write), `mqtt` (round trip through the broker). `runner` runs them
all at once. `home_assistant` is `farm-agent check`'s look at Home Assistant.
"""

from farm_agent.health.probes.result import (
    CacheFigures,
    ProbeKind,
    ProbeResult,
    ProbeRound,
    QueueFigures,
    TaskFigures,
)
from farm_agent.health.probes.runner import Prober

__all__ = [
    "CacheFigures",
    "ProbeKind",
    "ProbeResult",
    "ProbeRound",
    "Prober",
    "QueueFigures",
    "TaskFigures",
]
