"""One scheduled call at the earliest requested time, instead of a timer per deadline."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime

from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.helpers.event import async_call_later


class EarliestCall:
    """Run `action(now)` once at the earliest time any caller asked for.

    Times are `time.monotonic()` values: a wall-clock step (NTP at boot on a Raspberry
    Pi without a real-time clock) must neither fire a deadline early nor hold it back.
    """

    def __init__(self, hass: HomeAssistant, action: Callable[[float], None]) -> None:
        """Remember what to run; nothing is scheduled yet."""
        self._hass = hass
        self._action = action
        self._at: float | None = None
        self._unsub: CALLBACK_TYPE | None = None

    @callback
    def request(self, at: float) -> None:
        """Make sure the action runs no later than `at` (a time.monotonic() value)."""
        if self._at is not None and self._at <= at:
            return
        self.cancel()
        self._at = at
        self._unsub = async_call_later(self._hass, max(0.0, at - time.monotonic()), self._run)

    @callback
    def cancel(self) -> None:
        """Drop the scheduled call, if any."""
        if self._unsub is not None:
            self._unsub()
        self._unsub = None
        self._at = None

    @callback
    def _run(self, _now: datetime) -> None:
        """Run the action with the monotonic time; it asks again for its next time."""
        self._unsub = None
        self._at = None
        self._action(time.monotonic())
