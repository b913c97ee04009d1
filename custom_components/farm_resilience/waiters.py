"""Whoever waits for a command's outcome (send_command), by the call's context and entity."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from homeassistant.core import Context, HomeAssistant, callback

from .commands import CommandOutcome

type WaiterKey = tuple[str, str]


class Waiters:
    """Futures for the outcomes of calls about to be made, and those calls' own timeouts."""

    def __init__(self, hass: HomeAssistant) -> None:
        """Start with nobody waiting."""
        self._hass = hass
        self._futures: dict[WaiterKey, asyncio.Future[CommandOutcome]] = {}
        self._timeouts: dict[str, float] = {}

    @callback
    def expect(
        self, context: Context, entity_ids: Iterable[str], timeout: float
    ) -> dict[str, asyncio.Future[CommandOutcome]]:
        """Return futures for the outcomes of a call about to be made with `context`."""
        self._timeouts[context.id] = timeout
        futures: dict[str, asyncio.Future[CommandOutcome]] = {}
        for entity_id in entity_ids:
            futures[entity_id] = self._hass.loop.create_future()
            self._futures[(context.id, entity_id)] = futures[entity_id]
        return futures

    @callback
    def forget(self, context: Context) -> None:
        """Drop what `expect` set up for a call."""
        self._timeouts.pop(context.id, None)
        for key in [key for key in self._futures if key[0] == context.id]:
            self._futures.pop(key).cancel()

    @callback
    def timeout(self, context_id: str, default: float) -> float:
        """Return (once) the timeout a waiting caller asked for its call, else `default`."""
        return self._timeouts.pop(context_id, default)

    @callback
    def resolve(self, outcome: CommandOutcome) -> None:
        """Hand an outcome to whoever waits for it."""
        waiter = self._futures.pop((outcome.context.id, outcome.entity_id), None)
        if waiter is not None and not waiter.done():
            waiter.set_result(outcome)

    @callback
    def cancel(self, context_id: str, entity_id: str) -> None:
        """Tell whoever waits for this command that it ends without an outcome."""
        if (waiter := self._futures.pop((context_id, entity_id), None)) is not None:
            waiter.cancel()

    @callback
    def rename(self, context_id: str, old: str, new: str) -> None:
        """Keep waiting for a command whose entity was renamed."""
        if (waiter := self._futures.pop((context_id, old), None)) is not None:
            self._futures[(context_id, new)] = waiter

    @callback
    def cancel_all(self) -> None:
        """Tell everyone waiting that the wait was cancelled (Home Assistant stops)."""
        for waiter in self._futures.values():
            waiter.cancel()
        self.clear()

    @callback
    def clear(self) -> None:
        """Forget everyone, without telling them (they are handed over)."""
        self._futures.clear()
        self._timeouts.clear()

    @callback
    def take_over(self, other: Waiters) -> None:
        """Take the waiters of another tracker's (a reload's) as they are."""
        self._futures.update(other._futures)
        self._timeouts.update(other._timeouts)
