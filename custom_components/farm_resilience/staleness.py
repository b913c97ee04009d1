"""Stale sensors: a monitored sensor that has not reported for `stale_after` seconds."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from homeassistant.core import CALLBACK_TYPE, Event, HomeAssistant, callback
from homeassistant.helpers.event import (
    async_track_state_change_event,
    async_track_state_report_event,
)

from .timing import EarliestCall


class StaleMonitor:
    """Tells which monitored sensors are stale, from `last_reported` (repeats count)."""

    def __init__(
        self,
        hass: HomeAssistant,
        sensors: list[str],
        stale_after: float,
        on_change: Callable[[], None],
    ) -> None:
        """Prepare; nothing is stale before `async_arm`."""
        self.hass = hass
        self.sensors = sensors
        self.stale_after = stale_after
        self._on_change = on_change
        self.stale: list[str] = []
        self.armed_at: float | None = None
        self._check = EarliestCall(hass, self.async_evaluate)
        self._unsubs: list[CALLBACK_TYPE] = []

    @callback
    def async_start(self) -> None:
        """Listen to reports so that a stale sensor recovers the moment it reports."""
        if not self.sensors:
            return
        self._unsubs = [
            async_track_state_change_event(self.hass, self.sensors, self._async_on_report),
            async_track_state_report_event(self.hass, self.sensors, self._async_on_report),
        ]

    @callback
    def async_arm(self, now: float) -> None:
        """Start judging: a sensor silent since before `now` is judged from `now`."""
        self.armed_at = now
        self.async_evaluate(now)

    @callback
    def async_stop(self) -> None:
        """Stop listening and checking."""
        while self._unsubs:
            self._unsubs.pop()()
        self._check.cancel()

    @callback
    def _async_on_report(self, event: Event[Any]) -> None:
        """Re-judge at once when a stale sensor reports; fresh ones need no work."""
        if event.data["entity_id"] in self.stale:
            self.async_evaluate(event.time_fired_timestamp)

    @callback
    def async_evaluate(self, now: float) -> None:
        """Recompute the stale list; ask to run again when the next sensor would go stale."""
        if self.armed_at is None:
            return
        stale: list[str] = []
        next_check: float | None = None
        for sensor in self.sensors:
            due = self._last_report(sensor) + self.stale_after
            if due <= now:
                stale.append(sensor)
            elif next_check is None or due < next_check:
                next_check = due
        if next_check is not None:
            self._check.request(next_check)
        if stale != self.stale:
            self.stale = stale
            self._on_change()

    def reasons(self, now: float) -> list[str]:
        """Return one plain-words reason per stale sensor."""
        return [
            f"{sensor}: no report for more than {self.stale_after:g} s" for sensor in self.stale
        ]

    def _last_report(self, sensor: str) -> float:
        """Return when the sensor last reported, never earlier than arming."""
        assert self.armed_at is not None
        state = self.hass.states.get(sensor)
        reported = state.last_reported_timestamp if state is not None else 0.0
        return max(reported, self.armed_at)
