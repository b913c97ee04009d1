"""A device's down spells within a sliding window: how long it was down, how many times.

A device that drops off for 55 s and comes back for 2 s, over and over, is never
down for a whole `outage_alert` at a stretch; what gives it away is its downtime
within a window. Spells are kept in time order and leave the window from the
front, so the work per spell is constant on average. Times are monotonic.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

# Spells remembered per device: beyond, the two oldest are merged (their downtime and
# count are kept; only when within the spell the downtime fell becomes approximate).
MAX_SPELLS = 64


@dataclass(slots=True)
class Spell:
    """One time the device was down (or several merged): when, how long in total, how often."""

    start: float
    end: float
    downtime: float
    count: int = 1


class Downtime:
    """The closed down spells of one device that end within the last `window_s`."""

    def __init__(self, window_s: float) -> None:
        """Start with no spell."""
        self.window_s = window_s
        self._spells: deque[Spell] = deque()
        self._downtime = 0.0
        self._count = 0

    def add(self, start: float, end: float) -> None:
        """Remember a spell that is over."""
        self._append(Spell(start, end, end - start))
        if len(self._spells) > MAX_SPELLS:
            first, second = self._spells.popleft(), self._spells.popleft()
            merged = Spell(
                first.start,
                second.end,
                first.downtime + second.downtime,
                first.count + second.count,
            )
            self._spells.appendleft(merged)

    def within(self, now: float, down_since: float | None) -> tuple[float, int]:
        """Return the downtime and the number of spells within the window as of `now`.

        `down_since`: when the spell still going on began (None while the device is up).
        """
        cutoff = now - self.window_s
        while self._spells and self._spells[0].end <= cutoff:
            gone = self._spells.popleft()
            self._downtime -= gone.downtime
            self._count -= gone.count
        downtime, count = self._downtime, self._count
        if self._spells and (overhang := cutoff - self._spells[0].start) > 0:
            oldest = self._spells[0]
            downtime -= oldest.downtime * overhang / (oldest.end - oldest.start)
        if down_since is not None:
            downtime += now - max(down_since, cutoff)
            count += 1
        return max(downtime, 0.0), count

    def first_start(self, now: float) -> float | None:
        """Return when the oldest spell within the window began (clipped to the window)."""
        self.within(now, None)  # lets spells that ended before the window go
        if not self._spells:
            return None
        return max(self._spells[0].start, now - self.window_s)

    def as_list(self) -> list[list[float]]:
        """Return the spells as JSON-ready data: [start, end, downtime, count] each."""
        return [[s.start, s.end, s.downtime, s.count] for s in self._spells]

    def load(self, spells: list[Any]) -> None:
        """Replace the spells with stored ones (as `as_list` wrote them, already validated)."""
        self._spells.clear()
        self._downtime = 0.0
        self._count = 0
        for start, end, downtime, count in spells:
            self._append(Spell(float(start), float(end), float(downtime), int(count)))

    def __bool__(self) -> bool:
        """Return whether any spell is remembered."""
        return bool(self._spells)

    def _append(self, spell: Spell) -> None:
        """Add a spell at the end and to the totals."""
        self._spells.append(spell)
        self._downtime += spell.downtime
        self._count += spell.count
