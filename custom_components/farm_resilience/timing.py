"""Calls at a monotonic time: one timer per job, moved instead of multiplied."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime

from homeassistant.core import CALLBACK_TYPE, HassJob, HomeAssistant, callback
from homeassistant.helpers.event import async_call_later


class MonotonicCall:
    """Run `action(now)` once at a time.monotonic() value; scheduling again moves it.

    Times are monotonic: a wall-clock step (NTP at boot on a Raspberry Pi without a
    real-time clock) must neither fire a deadline early nor hold it back.
    """

    def __init__(
        self,
        hass: HomeAssistant,
        action: Callable[[float], None],
        *,
        cancel_on_shutdown: bool = False,
    ) -> None:
        """Remember what to run; nothing is scheduled yet."""
        self._hass = hass
        self._job = HassJob(self._run, cancel_on_shutdown=cancel_on_shutdown)
        self._action = action
        self.at: float | None = None
        self._unsub: CALLBACK_TYPE | None = None

    @callback
    def schedule(self, at: float) -> None:
        """Run the action at `at` (a time.monotonic() value) instead of when it was due."""
        if at == self.at:
            return
        self.cancel()
        self.at = at
        self._unsub = async_call_later(self._hass, max(0.0, at - time.monotonic()), self._job)

    @callback
    def cancel(self) -> None:
        """Drop the scheduled call, if any."""
        if self._unsub is not None:
            self._unsub()
        self._unsub = None
        self.at = None

    @callback
    def _run(self, _now: datetime) -> None:
        """Run the action with the monotonic time; it schedules its next time itself."""
        self._unsub = None
        self.at = None
        self._action(time.monotonic())


class EarliestCall(MonotonicCall):
    """Run `action(now)` once at the earliest time any caller asked for.

    One timer for many deadlines: each caller asks for its own, the earliest wins,
    and the action asks again for the next one when it runs.
    """

    @callback
    def request(self, at: float) -> None:
        """Make sure the action runs no later than `at` (a time.monotonic() value)."""
        if self.at is None or at < self.at:
            self.schedule(at)
