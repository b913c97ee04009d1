"""Watched, device and broker time in wall-clock buckets over the window: uptime's raw figures.

Time accrues piecewise: between two changes, the number of devices watched and
down, and whether the broker link is up, stay the same, so the time since the
last change is added at those counts when the next one comes (and whenever the
figures are read). Durations come from the monotonic clock; the wall clock only
places them in 5-minute buckets, which survive restarts. Time while Home
Assistant did not run (or before the alarms were armed) is in no bucket: it
counts neither as up nor as down.

Each accrual touches the buckets it spans and the window's running totals, so
its cost does not depend on how many devices there are.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import deque
from dataclasses import dataclass, fields, replace
from itertools import accumulate

from .statistics import BUCKET_SECONDS


@dataclass(slots=True)
class Bucket:
    """Seconds accrued within one 5-minute bucket (wall clock)."""

    start: float
    watched_s: float = 0.0  # the hub watched (armed)
    device_s: float = 0.0  # device-seconds watched
    down_s: float = 0.0  # device-seconds down
    broker_s: float = 0.0  # the broker link watched
    broker_down_s: float = 0.0
    reconnects: int = 0

    def as_list(self) -> list[float]:
        """Return the bucket as JSON-ready data, in field order."""
        return [
            self.start,
            self.watched_s,
            self.device_s,
            self.down_s,
            self.broker_s,
            self.broker_down_s,
            self.reconnects,
        ]

    @classmethod
    def from_list(cls, values: list[float]) -> Bucket:
        """Return a bucket from its stored data (as `as_list` wrote it, already validated)."""
        start, watched, device, down, broker, broker_down, reconnects = values
        return cls(start, watched, device, down, broker, broker_down, int(reconnects))


BUCKET_FIELDS = len(fields(Bucket))


@dataclass(frozen=True, slots=True)
class Rates:
    """What holds between two changes: devices watched and down, the broker link."""

    devices: int
    down: int
    # None: the broker link is not followed (no MQTT integration).
    broker_up: bool | None


class Ledger:
    """The window's buckets and their running totals."""

    def __init__(self, window_s: float) -> None:
        """Start with no time accrued and no accrual point (nothing is watched yet)."""
        self.window_s = window_s
        self._buckets: deque[Bucket] = deque()
        self._totals = Bucket(0.0)
        # The monotonic time up to which time has accrued; None while not watching.
        self._accrued_to: float | None = None

    def start(self, now: float) -> None:
        """Start watching at monotonic time `now` (arming): time accrues from here."""
        self._accrued_to = now

    def accrue(self, now: float, wall: float, rates: Rates) -> None:
        """Add the time since the last accrual at `rates`, which held all along."""
        if self._accrued_to is None:
            return
        seconds = min(max(now - self._accrued_to, 0.0), self.window_s)
        self._accrued_to = now
        start = wall - seconds
        while seconds > 0:
            bucket = self._bucket_at(start)
            portion = min(seconds, bucket.start + BUCKET_SECONDS - start)
            if portion <= 0:  # the wall clock stepped back: into the latest bucket
                portion = seconds
            self._add(bucket, portion, rates)
            start += portion
            seconds -= portion
        self._expire(wall)

    def count_reconnect(self, wall: float) -> None:
        """Count a reconnect to the broker at wall-clock time `wall`."""
        self._bucket_at(wall).reconnects += 1
        self._totals.reconnects += 1

    def totals(self, wall: float) -> Bucket:
        """Return the window's totals as of `wall`; the oldest bucket counts for its overlap."""
        self._expire(wall)
        totals = replace(self._totals)
        cutoff = wall - self.window_s
        if self._buckets and (overhang := cutoff - self._buckets[0].start) > 0:
            share = overhang / BUCKET_SECONDS
            oldest = self._buckets[0]
            for name in ("watched_s", "device_s", "down_s", "broker_s", "broker_down_s"):
                setattr(totals, name, getattr(totals, name) - share * getattr(oldest, name))
        return totals

    def watched_since(self, wall: float) -> WatchedSince:
        """Return a look-up of hub-watched seconds from a wall time on (for per-device figures)."""
        self._expire(wall)
        starts = [bucket.start for bucket in self._buckets]
        # suffix[i]: watched seconds in buckets i and later.
        suffix = list(accumulate(reversed([b.watched_s for b in self._buckets])))[::-1]
        return WatchedSince(starts, suffix)

    def as_list(self) -> list[list[float]]:
        """Return the buckets as JSON-ready data."""
        return [bucket.as_list() for bucket in self._buckets]

    def load(self, buckets: list[list[float]], wall: float) -> None:
        """Replace the buckets with stored ones (validated), dropping those before the window."""
        self._buckets.clear()
        self._totals = Bucket(0.0)
        for values in sorted(buckets):
            if values[0] > wall:
                continue  # from a clock that ran ahead: it would never leave the window
            bucket = Bucket.from_list(values)
            self._buckets.append(bucket)
            self._add_totals(bucket)
        self._expire(wall)

    def _bucket_at(self, wall: float) -> Bucket:
        """Return the bucket of `wall`, opening one when time has moved on."""
        start = wall - wall % BUCKET_SECONDS
        if not self._buckets or self._buckets[-1].start < start:
            self._buckets.append(Bucket(start))
        return self._buckets[-1]

    def _add(self, bucket: Bucket, seconds: float, rates: Rates) -> None:
        """Add `seconds` at `rates` to a bucket and to the totals."""
        for target in (bucket, self._totals):
            target.watched_s += seconds
            target.device_s += seconds * rates.devices
            target.down_s += seconds * rates.down
            if rates.broker_up is not None:
                target.broker_s += seconds
                target.broker_down_s += 0.0 if rates.broker_up else seconds

    def _add_totals(self, bucket: Bucket, sign: int = 1) -> None:
        """Add (or, with sign -1, take away) a whole bucket to the totals."""
        for name, value in zip(
            ("watched_s", "device_s", "down_s", "broker_s", "broker_down_s", "reconnects"),
            bucket.as_list()[1:],
            strict=True,
        ):
            setattr(self._totals, name, getattr(self._totals, name) + sign * value)

    def _expire(self, wall: float) -> None:
        """Drop the buckets that lie wholly before the window."""
        cutoff = wall - self.window_s
        while self._buckets and self._buckets[0].start + BUCKET_SECONDS <= cutoff:
            self._add_totals(self._buckets.popleft(), -1)


@dataclass(frozen=True, slots=True)
class WatchedSince:
    """Hub-watched seconds from a time on, over the window's buckets (to the bucket)."""

    starts: list[float]
    suffix: list[float]

    def __call__(self, wall: float) -> float:
        """Return the seconds watched in the buckets from the one holding `wall` on."""
        index = bisect_left(self.starts, wall - wall % BUCKET_SECONDS)
        return self.suffix[index] if index < len(self.suffix) else 0.0
