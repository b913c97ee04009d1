"""Stale sensors: a monitored sensor silent for far longer than its own rhythm, or `stale_after`.

Each sensor's rhythm (rhythm.py) is learned from its own reports: one that
reports every 10 s is stale after a minute of silence, one that reports every
30 minutes only after `stale_after` (an upper bound the user sets). Only real
values are reports: a sensor whose device is offline may rewrite
`unavailable` (or `unknown`) every poll, and is as silent as one that writes
nothing. Repeating the same real value is a report (HA's `state_reported`).

The work per report does not depend on how many sensors are monitored: a report
notes the time and the interval; each sensor waits in a heap for the moment it
would go stale, and is looked at then (and put back if it has reported since). A
report that shortens its sensor's limit queues a new, earlier look; the older one
is skipped when it comes up.
Times are monotonic (`time.monotonic()`).
"""

from __future__ import annotations

import heapq
import math
import time
from collections.abc import Callable, Mapping
from typing import Any

from homeassistant.const import STATE_UNAVAILABLE, STATE_UNKNOWN
from homeassistant.core import CALLBACK_TYPE, Event, HomeAssistant, State, callback
from homeassistant.helpers.event import (
    async_track_state_change_event,
    async_track_state_report_event,
)

from .bounds import Texts
from .rhythm import Rhythm, SilenceLimit, silence_limit
from .timing import EarliestCall

NOT_REPORTS = frozenset({STATE_UNAVAILABLE, STATE_UNKNOWN})


def is_report(state: State | None) -> bool:
    """Return whether a state carries a real value (not unavailable, unknown or removed)."""
    return state is not None and state.state not in NOT_REPORTS


class StaleMonitor:
    """Tells which monitored sensors are stale."""

    def __init__(
        self,
        hass: HomeAssistant,
        sensors: list[str],
        stale_after: float,
        on_change: Callable[[], None],
    ) -> None:
        """Prepare; nothing is stale before `async_arm`."""
        self.hass = hass
        self.sensors = list(dict.fromkeys(sensors))
        self.stale_after = stale_after
        self._on_change = on_change
        # In the order the sensors went stale, with the limit each one passed.
        self.stale: dict[str, SilenceLimit] = {}
        # When each sensor last reported a real value (monotonic), as far as known.
        self.last_report: dict[str, float] = {}
        # Each sensor's rhythm, learned from intervals between reports seen live.
        self.rhythms: dict[str, Rhythm] = {sensor: Rhythm() for sensor in self.sensors}
        # When each sensor last reported while this run of Home Assistant watched it.
        self._heard: dict[str, float] = {}
        # (when a sensor would go stale, sensor): the live entry of each sensor not stale
        # is the one at `_queued[sensor]`; others were superseded and are skipped.
        self._due: list[tuple[float, str]] = []
        self._queued: dict[str, float] = {}
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
    def async_restore_rhythms(self, rhythms: Mapping[str, list[float]]) -> None:
        """Take back the rhythms learned before (kept across restarts: they are durations)."""
        for sensor in self.sensors:
            if (intervals := rhythms.get(sensor)) is not None:
                self.rhythms[sensor] = Rhythm(intervals)

    @callback
    def async_arm(self, at: float, last_report: Mapping[str, float] | None = None) -> None:
        """Start judging: silence counts from `at` at the earliest.

        `last_report`: when the sensors last reported, as a reload kept it (in this run
        of Home Assistant, so the next interval is a true one); a sensor missing there
        is judged from its state in Home Assistant.
        """
        self.armed_at = at
        now, wall = time.monotonic(), time.time()
        kept = last_report or {}
        for sensor, reported in kept.items():
            if sensor in self.rhythms:
                self._heard.setdefault(sensor, reported)
        for sensor in self.sensors:
            if sensor not in self.last_report:
                self.last_report[sensor] = self._last_known(sensor, kept.get(sensor), now, wall)
        self._queued = {sensor: self._due_at(sensor) for sensor in self.sensors}
        self._due = [(due, sensor) for sensor, due in self._queued.items()]
        heapq.heapify(self._due)
        self.async_evaluate(now)

    @callback
    def async_stop(self) -> None:
        """Stop listening and checking."""
        while self._unsubs:
            self._unsubs.pop()()
        self._check.cancel()

    @callback
    def _async_on_report(self, event: Event[Any]) -> None:
        """Note a real value; a stale sensor recovers at once."""
        if not is_report(event.data["new_state"]):
            return
        sensor: str = event.data["entity_id"]
        now = time.monotonic()
        if (heard := self._heard.get(sensor)) is not None:
            self.rhythms[sensor].learn(now - heard)
        self._heard[sensor] = now
        self.last_report[sensor] = now
        if self.armed_at is None:
            return
        if sensor in self.stale:
            del self.stale[sensor]
            self._wait_for(sensor)
            self._on_change()
        elif self._due_at(sensor) < self._queued.get(sensor, math.inf):
            self._wait_for(sensor)  # the rhythm shortened its limit: look earlier

    @callback
    def async_evaluate(self, now: float) -> None:
        """Mark the sensors whose time has come stale, unless they reported since."""
        if self.armed_at is None:
            return
        changed = False
        while self._due and self._due[0][0] <= now:
            due, sensor = heapq.heappop(self._due)
            if self._queued.get(sensor) != due:
                continue  # superseded by an earlier look, or the sensor is stale
            del self._queued[sensor]
            if self._due_at(sensor) <= now:
                self.stale[sensor] = self._limit(sensor)
                changed = True
            else:
                self._wait_for(sensor)
        if self._due:
            self._check.request(self._due[0][0])
        if changed:
            self._on_change()

    def reasons(self, now: float) -> Texts:
        """Return one plain-words reason per stale sensor (only the first ones are built)."""
        return Texts.of(
            (_reason(sensor, limit) for sensor, limit in self.stale.items()), len(self.stale)
        )

    def _wait_for(self, sensor: str) -> None:
        """Queue a look at a sensor (not stale) at the time it would go stale."""
        due = self._due_at(sensor)
        self._queued[sensor] = due
        heapq.heappush(self._due, (due, sensor))
        self._check.request(due)

    def _limit(self, sensor: str) -> SilenceLimit:
        """Return how long the sensor may stay silent, by its rhythm and `stale_after`."""
        return silence_limit(self.rhythms[sensor], self.stale_after)

    def _due_at(self, sensor: str) -> float:
        """Return when the sensor goes stale if it does not report: silence counts from arming."""
        assert self.armed_at is not None
        return max(self.last_report[sensor], self.armed_at) + self._limit(sensor).seconds

    def _last_known(self, sensor: str, kept: float | None, now: float, wall: float) -> float:
        """Return when the sensor last reported, from what was kept and from its state.

        HA keeps wall-clock times only: their age is taken once, here, at start. A real
        value shows its last report (later than the kept one if it reported during the
        reload). A sensor showing `unavailable` stopped reporting at the latest when it
        changed to that; one without a state is judged from now.
        """
        state = self.hass.states.get(sensor)
        if state is None:
            return now if kept is None else kept
        if is_report(state):
            reported = now - max(0.0, wall - state.last_reported_timestamp)
            return reported if kept is None else max(kept, reported)
        if kept is not None:
            return kept
        return now - max(0.0, wall - state.last_changed_timestamp)


def _reason(sensor: str, limit: SilenceLimit) -> str:
    """Return why a sensor is stale, in plain words."""
    if limit.p90_s is None:
        return f"{sensor}: no report for more than {limit.seconds:g} s"
    usual = f"{limit.p90_s:.0f}" if limit.p90_s >= 10 else f"{limit.p90_s:.1f}"
    return (
        f"{sensor}: no report for more than {limit.seconds:.0f} s "
        f"(it usually reports within {usual} s)"
    )
