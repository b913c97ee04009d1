"""A monitored sensor's own rhythm: how long it usually goes between reports.

Learned from the sensor's last `INTERVALS` intervals between reports: their 90th
percentile (nearest rank, the 3rd longest of 20). Robust to both sides: a burst
of quick reports only fills the short end, and up to two unusual gaps in the last
twenty are ignored. Each report replaces the oldest interval, so the work per
report is fixed, and a sensor whose rhythm changes is followed within twenty reports.

A sensor is stale once silent for 3 x that percentile, never sooner than
`FLOOR_S` and never later than the user's `stale_after`; until `MIN_INTERVALS`
intervals are known, `stale_after` alone applies.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

INTERVALS = 20
QUANTILE = 0.9
MIN_INTERVALS = 5
RHYTHM_FACTOR = 3.0
FLOOR_S = 60.0


class Rhythm:
    """The recent intervals between one sensor's reports."""

    __slots__ = ("intervals",)

    def __init__(self, intervals: Iterable[float] = ()) -> None:
        """Start from intervals already known (oldest first), or none."""
        self.intervals: deque[float] = deque(intervals, maxlen=INTERVALS)

    def learn(self, interval_s: float) -> None:
        """Take one more interval between two reports."""
        self.intervals.append(interval_s)

    @property
    def p90_s(self) -> float | None:
        """Return the 90th percentile interval (nearest rank); None until enough are known."""
        if len(self.intervals) < MIN_INTERVALS:
            return None
        rank = math.ceil(QUANTILE * len(self.intervals))
        return sorted(self.intervals)[rank - 1]


@dataclass(frozen=True, slots=True)
class SilenceLimit:
    """How long a sensor may stay silent, and whether its own rhythm set it."""

    seconds: float
    # The 90th percentile interval that set the limit; None when `stale_after` did.
    p90_s: float | None


def silence_limit(rhythm: Rhythm | None, stale_after: float) -> SilenceLimit:
    """Return how long a sensor with this rhythm may stay silent before it is stale."""
    p90 = None if rhythm is None else rhythm.p90_s
    if p90 is None:
        return SilenceLimit(stale_after, None)
    learned = max(RHYTHM_FACTOR * p90, FLOOR_S)
    if learned >= stale_after:
        return SilenceLimit(stale_after, None)
    return SilenceLimit(learned, p90)
