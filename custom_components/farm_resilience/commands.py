"""Commands as the tracker holds them: pending, ended, and watched for a bounce."""

from __future__ import annotations

from dataclasses import dataclass

from homeassistant.core import Context

from .expectations import Expectation


@dataclass(slots=True)
class PendingCommand:
    """A command waiting for its entity to show the expected result."""

    entity_id: str
    domain: str
    service: str
    expectation: Expectation
    called_at: float  # wall clock: labels only
    started: float  # monotonic
    deadline: float  # monotonic
    context: Context
    # Opened while an earlier command was still on its way and the entity already showed
    # this one's result: that state is about to change, so only what follows can tell.
    replacing: bool = False
    left: bool = False  # a replacing command's entity has shown another result since


@dataclass(frozen=True, slots=True)
class CommandOutcome:
    """How one command to one entity ended."""

    entity_id: str
    domain: str
    service: str
    outcome: str
    latency_s: float | None
    context: Context
    at: float  # wall clock: which statistics bucket it lands in


@dataclass(slots=True)
class Settling:
    """A command that succeeded, watched for a bounce until `until` (monotonic)."""

    command: PendingCommand
    until: float
