"""Which build is running: its version on /metrics, so a canary rollout can compare agents."""

from __future__ import annotations

from farm_agent import __version__
from farm_agent.metrics import Metrics


def add_build_info(metrics: Metrics) -> None:
    """`farm_agent_build_info{version="…"} 1` in `metrics`."""
    version = {"version": __version__}
    metrics.info("farm_agent_build", "The version of the running farm-agent", version)
