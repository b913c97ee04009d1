"""Burn rates of the command error budget, and the SRE workbook's multi-window alerts.

Burn rate = observed failure rate / budgeted failure rate (1 - target). The
alerts (Google SRE workbook, "Alerting on SLOs", multiwindow multi-burn-rate):
fast when the last 1 h and 5 min both burn faster than 14.4x (2 % of a 30-day
budget in an hour), slow when the last 6 h and 30 min both burn faster than 6x.
The long window of a pair must also hold evidence (`evidence.below_target`) and
at least `min_samples` commands: one failure among a handful of commands burns
"fast" without telling anything.

Counts are kept per minute (wall clock, like the statistics' buckets) for the
longest window; each window keeps running totals and drops whole minutes as they
leave it, so recording and reading cost the same whatever the traffic.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from .evidence import FLEET_CONFIDENCE, below_target

SLOT_SECONDS = 60
# Window name -> length in minutes.
WINDOWS: dict[str, int] = {"5m": 5, "30m": 30, "1h": 60, "6h": 360}
LONGEST_MINUTES = max(WINDOWS.values())


@dataclass(frozen=True, slots=True)
class BurnAlert:
    """A multi-window alert: both windows must burn faster than `threshold`."""

    name: str
    long_window: str
    short_window: str
    threshold: float


ALERTS = (
    BurnAlert("fast", "1h", "5m", 14.4),
    BurnAlert("slow", "6h", "30m", 6.0),
)


@dataclass(frozen=True, slots=True)
class WindowCounts:
    """Commands and failures within one window."""

    commands: int
    failed: int


@dataclass(frozen=True, slots=True)
class FiringAlert:
    """An alert that fires: its windows' burn rates and the long window's counts."""

    alert: BurnAlert
    long_rate: float
    short_rate: float
    long_counts: WindowCounts


class _Window:
    """Per-minute counts within the last `minutes`, with running totals."""

    def __init__(self, minutes: int) -> None:
        """Start empty."""
        self.minutes = minutes
        self.slots: deque[list[int]] = deque()  # [minute, commands, failed]
        self.commands = 0
        self.failed = 0

    def add(self, minute: int, commands: int, failed: int) -> None:
        """Count commands in a minute (the latest one, or one after it)."""
        if self.slots and self.slots[-1][0] == minute:
            slot = self.slots[-1]
            slot[1] += commands
            slot[2] += failed
        else:
            self.slots.append([minute, commands, failed])
        self.commands += commands
        self.failed += failed

    def expire(self, minute: int) -> None:
        """Drop the minutes before the window that ends with `minute`."""
        while self.slots and self.slots[0][0] <= minute - self.minutes:
            _, commands, failed = self.slots.popleft()
            self.commands -= commands
            self.failed -= failed


class BurnWindows:
    """Command counts over the burn-rate windows, and which alerts fire."""

    def __init__(self) -> None:
        """Start with every window empty."""
        self._windows = {name: _Window(minutes) for name, minutes in WINDOWS.items()}

    def record(self, failed: bool, at: float) -> None:
        """Count one command (success, or failed) at wall-clock time `at`."""
        minute = int(at // SLOT_SECONDS)
        for window in self._windows.values():
            # A clock stepped back: counted in the latest minute, which keeps them in order.
            at_minute = max(minute, window.slots[-1][0]) if window.slots else minute
            window.expire(at_minute)
            window.add(at_minute, 1, int(failed))

    def counts(self, now: float) -> dict[str, WindowCounts]:
        """Return each window's counts as of wall-clock time `now`."""
        minute = int(now // SLOT_SECONDS)
        for window in self._windows.values():
            window.expire(minute)
        return {
            name: WindowCounts(window.commands, window.failed)
            for name, window in self._windows.items()
        }

    def reset(self) -> None:
        """Forget everything."""
        self._windows = {name: _Window(minutes) for name, minutes in WINDOWS.items()}

    def as_list(self) -> list[list[int]]:
        """Return the longest window's minutes as JSON-ready data: [minute, commands, failed]."""
        return [slot.copy() for slot in self._windows["6h"].slots]

    def load(self, slots: list[tuple[int, int, int]], now: float) -> None:
        """Replace the counts with stored minutes (validated), dropping what lies before."""
        self.reset()
        minute = int(now // SLOT_SECONDS)
        for at, commands, failed in sorted(slots):
            if at > minute:
                continue  # from a clock that ran ahead: it would never leave the window
            for window in self._windows.values():
                if at > minute - window.minutes:
                    window.add(at, commands, failed)


def burn_rate(counts: WindowCounts, target_pct: float) -> float | None:
    """Return how many times faster than budgeted the window fails; None without commands."""
    budget = 1.0 - target_pct / 100.0
    if not counts.commands or budget <= 0.0:
        return None
    return counts.failed / counts.commands / budget


def firing(
    counts: dict[str, WindowCounts], target_pct: float, min_samples: int
) -> list[FiringAlert]:
    """Return the alerts that fire, on evidence, as of the counts given."""
    fired: list[FiringAlert] = []
    for alert in ALERTS:
        long_counts = counts[alert.long_window]
        long_rate = burn_rate(long_counts, target_pct)
        short_rate = burn_rate(counts[alert.short_window], target_pct)
        if (
            long_rate is not None
            and short_rate is not None
            and long_rate > alert.threshold
            and short_rate > alert.threshold
            and long_counts.commands >= min_samples
            and below_target(long_counts.commands, long_counts.failed, target_pct, FLEET_CONFIDENCE)
        ):
            fired.append(FiringAlert(alert, long_rate, short_rate, long_counts))
    return fired
