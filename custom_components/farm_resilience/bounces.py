"""Bounces: a success that the entity undoes by itself right after, with no newer command.

A relay that clicks on and falls back within `BOUNCE_WINDOW_S` did not do what it
was told: its command's success stays counted, and a `bounced` outcome follows.
"""

from __future__ import annotations

from collections.abc import Iterable

from homeassistant.const import STATE_UNAVAILABLE
from homeassistant.core import State, callback

from .commands import PendingCommand, Settling
from .const import BOUNCE_WINDOW_S


class BounceWatch:
    """The successful commands still settling: at most one per entity."""

    def __init__(self) -> None:
        """Watch nothing yet; an expired watch is dropped when its entity next changes."""
        self._settling: dict[str, Settling] = {}

    @callback
    def watch(self, command: PendingCommand, succeeded_at: float) -> None:
        """Watch a command that succeeded at `succeeded_at` (monotonic) for a bounce."""
        self._settling[command.entity_id] = Settling(command, succeeded_at + BOUNCE_WINDOW_S)

    @callback
    def drop(self, entity_id: str) -> None:
        """Stop watching an entity (a new command, or the entity disabled)."""
        self._settling.pop(entity_id, None)

    @callback
    def bounced(self, entity_id: str, state: State | None, now: float) -> PendingCommand | None:
        """Return the command whose result the entity just lost within the window, if any."""
        if (watch := self._settling.get(entity_id)) is None:
            return None
        if now > watch.until or state is None or state.state == STATE_UNAVAILABLE:
            del self._settling[entity_id]  # settled, or an outage (counted as such)
        elif not watch.command.expectation.is_met(state):
            del self._settling[entity_id]
            return watch.command
        return None

    @callback
    def rename(self, old: str, new: str) -> None:
        """Keep watching a renamed entity."""
        if (watch := self._settling.pop(old, None)) is not None:
            watch.command.entity_id = new
            self._settling[new] = watch

    @callback
    def clear(self) -> None:
        """Watch nothing any more."""
        self._settling.clear()

    @callback
    def take_over(self, other: BounceWatch, followed: Iterable[str]) -> None:
        """Take another tracker's (a reload's) watches of entities still followed."""
        followed = set(followed)
        for entity_id, watch in other._settling.items():
            if entity_id in followed:
                self._settling[entity_id] = watch
