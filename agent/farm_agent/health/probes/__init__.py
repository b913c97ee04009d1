"""Probes: each one looks at one part of the backend and returns a result, never raises.

One module per kind: `postgres` (each route), `queue` (depths through pgmq.metrics),
`tasks` (processing time and success from the archive), `http` (endpoints and their
caching), `mqtt` (round trip through the broker). `runner` runs them all at once.
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
