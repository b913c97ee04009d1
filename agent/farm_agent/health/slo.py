"""Service level objectives: SLI, error budget, burn rates and status, as the SRE workbook has them.

An objective counts events, good and total, over windows that end now: 5 min, 30 min,
1 h and 6 h at minute resolution (the current minute and the ones before it), and the
objective's window (`slo.window_days`) at hour resolution (the current hour and the
hours before it). With `target` the objective as a share (99.9 % is 0.999):

- SLI = good / total over the window;
- error budget = 1 - target; budget remaining = 1 - (bad / total) / (1 - target):
  100 % with nothing bad, 0 % when exactly the budget went bad, negative beyond;
- burn rate over a window = its error rate / (1 - target): at 1 the budget lasts the
  window exactly; at 14.4 an hour spends 2 % of a 30-day budget;
- status: `unknown` without any event in the window; `breached` once the budget is
  spent (remaining <= 0); `at_risk` when a multi-window alert fires (fast: 1 h and 5 min
  both above 14.4; slow: 6 h and 30 min both above 6); else `ok`.

Judged on evidence. An alert fires only when its short window holds at least
MIN_SHORT_WINDOW_EVENTS events (a rate from fewer is not a measurement) and its long
window at least MIN_BAD_EVENTS bad ones (one failure is an accident, not a burn). The
budget is measured once the window holds enough events for it to allow one bad event
(1 / (1 - target): 1,000 for 99.9 %); before that the budget remaining is unknown
(null) and the objective cannot be `breached`, only `at_risk` or `ok`.
The maths is exact (fractions), so a test can state its figures exactly.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from fractions import Fraction
from typing import Any

from farm_agent.config import ObjectiveConfig, SloConfig

# The burn-rate windows, by the name the health JSON and /metrics give them.
WINDOW_MINUTES = {"5m": 5, "30m": 30, "1h": 60, "6h": 360}
_WINDOW_WORDS = {"5m": "5 min", "30m": "30 min", "1h": "1 h", "6h": "6 h"}
MIN_SHORT_WINDOW_EVENTS = 5
MIN_BAD_EVENTS = 2


class SloStatus(StrEnum):
    """Where an objective stands."""

    OK = "ok"
    AT_RISK = "at_risk"
    BREACHED = "breached"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Alert:
    """A multi-window burn-rate alert: both windows must burn faster than `burn_rate`."""

    name: str
    long: str
    short: str
    burn_rate: Fraction


ALERTS = (
    Alert("fast", "1h", "5m", Fraction("14.4")),
    Alert("slow", "6h", "30m", Fraction(6)),
)


@dataclass(frozen=True, slots=True)
class Events:
    """Events of one kind over some time: how many there were, how many were good."""

    good: int = 0
    total: int = 0

    @property
    def bad(self) -> int:
        return self.total - self.good

    def __add__(self, other: Events) -> Events:
        return Events(self.good + other.good, self.total + other.total)


def summed(events: Iterable[Events]) -> Events:
    total = Events()
    for each in events:
        total += each
    return total


@dataclass(frozen=True, slots=True)
class ObjectiveEvents:
    """An objective's events in each burn-rate window (`WINDOW_MINUTES`) and in its window."""

    windows: Mapping[str, Events]
    window: Events

    def __add__(self, other: ObjectiveEvents) -> ObjectiveEvents:
        return ObjectiveEvents(
            {name: self.windows[name] + other.windows[name] for name in WINDOW_MINUTES},
            self.window + other.window,
        )


NO_EVENTS = ObjectiveEvents(dict.fromkeys(WINDOW_MINUTES, Events()), Events())


def all_windows(events: Events) -> ObjectiveEvents:
    """The same events in every window: what one round adds, say."""
    return ObjectiveEvents(dict.fromkeys(WINDOW_MINUTES, events), events)


@dataclass(frozen=True, slots=True)
class ObjectiveReport:
    """One objective judged: the figures the health JSON and /metrics show."""

    name: str
    target_pct: float
    window: Events
    sli: Fraction | None
    budget_remaining: Fraction | None
    burn_rates: Mapping[str, Fraction | None]
    status: SloStatus
    # The alert that fired ("fast" or "slow"), when one did.
    alert: str | None = None

    def as_json(self) -> dict[str, Any]:
        """The contract's keys (DESIGN.md, "SLOs"), then the extensions: 5/30 min, counts."""
        return {
            "name": self.name,
            "target_pct": self.target_pct,
            "sli_pct": _percent(self.sli, 4),
            "budget_remaining_pct": _percent(self.budget_remaining, 2),
            "burn_rate_1h": _number(self.burn_rates["1h"], 2),
            "burn_rate_6h": _number(self.burn_rates["6h"], 2),
            "status": self.status,
            "burn_rate_5m": _number(self.burn_rates["5m"], 2),
            "burn_rate_30m": _number(self.burn_rates["30m"], 2),
            "good": self.window.good,
            "total": self.window.total,
        }

    def problem(self, window_days: int) -> str | None:
        """The sentence for the health's problems, when the objective is at risk or breached."""
        if self.status == SloStatus.BREACHED:
            assert self.sli is not None
            return (
                f"SLO {self.name} breached: {_shown_pct(self.sli)} % < {self.target_pct:g} % over"
                f" {window_days} days, error budget spent"
            )
        if self.status == SloStatus.AT_RISK:
            alert = next(each for each in ALERTS if each.name == self.alert)
            left = (
                "too few events yet to measure the budget"
                if self.budget_remaining is None
                else f"{float(self.budget_remaining) * 100:.1f} % of the budget left"
            )
            return (
                f"SLO {self.name} at risk: error budget burning"
                f" {_rate(self.burn_rates[alert.long])}x over {_WINDOW_WORDS[alert.long]}"
                f" and {_rate(self.burn_rates[alert.short])}x over {_WINDOW_WORDS[alert.short]}"
                f" (alert above {float(alert.burn_rate):g}x), {left}"
            )
        return None


@dataclass(frozen=True, slots=True)
class SloReport:
    """Every configured objective judged, and what kept them from being measured."""

    window_days: int
    objectives: tuple[ObjectiveReport, ...]
    # E.g. the history could not be written: sentences for the health's problems.
    notes: tuple[str, ...] = ()

    def as_json(self) -> dict[str, Any]:
        return {
            "window_days": self.window_days,
            "objectives": [objective.as_json() for objective in self.objectives],
        }

    @property
    def problems(self) -> list[str]:
        sentences = (objective.problem(self.window_days) for objective in self.objectives)
        return [*self.notes, *(sentence for sentence in sentences if sentence is not None)]


def unknown_report(config: SloConfig, notes: tuple[str, ...] = ()) -> SloReport:
    """Every objective `unknown`: nothing measured them (yet)."""
    return SloReport(
        config.window_days,
        tuple(judge(objective, NO_EVENTS) for objective in config.objectives),
        notes,
    )


def judge(objective: ObjectiveConfig, events: ObjectiveEvents) -> ObjectiveReport:
    """The objective's figures and status from its events."""
    budget = (100 - Fraction(str(objective.target_pct))) / 100
    burn_rates = {
        name: _error_rate(window) / budget if window.total else None
        for name, window in events.windows.items()
    }
    window = events.window
    if window.total == 0:
        return ObjectiveReport(
            objective.name, objective.target_pct, window, None, None, burn_rates, SloStatus.UNKNOWN
        )
    # Too few events to allow even one bad one: the budget cannot be measured yet.
    measured = window.total * budget >= 1
    remaining = 1 - _error_rate(window) / budget if measured else None
    fired = next((alert for alert in ALERTS if _fires(alert, events, burn_rates)), None)
    if remaining is not None and remaining <= 0:
        status = SloStatus.BREACHED
    elif fired is not None:
        status = SloStatus.AT_RISK
    else:
        status = SloStatus.OK
    return ObjectiveReport(
        name=objective.name,
        target_pct=objective.target_pct,
        window=window,
        sli=Fraction(window.good, window.total),
        budget_remaining=remaining,
        burn_rates=burn_rates,
        status=status,
        alert=fired.name if fired is not None else None,
    )


def _fires(
    alert: Alert, events: ObjectiveEvents, burn_rates: Mapping[str, Fraction | None]
) -> bool:
    long_rate, short_rate = burn_rates[alert.long], burn_rates[alert.short]
    return (
        events.windows[alert.short].total >= MIN_SHORT_WINDOW_EVENTS
        and events.windows[alert.long].bad >= MIN_BAD_EVENTS
        and long_rate is not None
        and short_rate is not None
        and long_rate > alert.burn_rate
        and short_rate > alert.burn_rate
    )


def _error_rate(events: Events) -> Fraction:
    return Fraction(events.bad, events.total)


def _percent(value: Fraction | None, digits: int) -> float | None:
    return None if value is None else round(float(value * 100), digits)


def _number(value: Fraction | None, digits: int) -> float | None:
    return None if value is None else round(float(value), digits)


def _shown_pct(share: Fraction) -> str:
    """A share as a percentage with enough digits to tell it from a 99.9 % target."""
    return f"{float(share * 100):.3f}".rstrip("0").rstrip(".")


def _rate(value: Fraction | None) -> str:
    return "?" if value is None else f"{float(value):.1f}"
