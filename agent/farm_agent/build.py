"""Which build is running: its version on /metrics, so a canary rollout can compare agents."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Info

from farm_agent import __version__


def register_build_info(registry: CollectorRegistry) -> None:
    """`farm_agent_build_info{version="…"} 1` in `registry`."""
    Info("farm_agent_build", "The version of the running farm-agent", registry=registry).info(
        {"version": __version__}
    )
