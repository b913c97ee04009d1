"""The degraded verdict: reasons gathered from providers, events only on transitions."""

from __future__ import annotations

from collections.abc import Callable
from itertools import islice

from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback

from .bounds import MAX_TEXTS, Texts, bounded
from .burn import FiringAlert
from .const import EVENT_DEGRADED, EVENT_RECOVERED, OUTCOME_SUCCESS
from .models import HubOptions
from .ranking import EntityFigures
from .slo import CommandSlo
from .statistics import WindowFigures

# A provider returns the causes it sees as of a monotonic time, in plain words: the
# first ones that can be shown and how many there are.
type ReasonProvider = Callable[[float], Texts]


class Degradation:
    """Collects reasons from providers and fires degraded / recovered on transitions."""

    def __init__(self, hass: HomeAssistant, *, degraded: bool = False) -> None:
        """Start with no provider, degraded as last known (a reload fires no second event)."""
        self.hass = hass
        # At most `bounds.MAX_TEXTS`, the last saying how many more: they reach the recorder.
        self.reasons: list[str] = []
        self.is_degraded = degraded
        self._providers: list[ReasonProvider] = []

    @callback
    def async_add_provider(self, provider: ReasonProvider) -> CALLBACK_TYPE:
        """Add a source of reasons; the returned callback removes it."""
        self._providers.append(provider)
        return lambda: self._providers.remove(provider)

    @callback
    def async_refresh(self, now: float) -> None:
        """Recompute the reasons; fire an event when the verdict flips."""
        self.reasons = reasons = bounded(provider(now) for provider in self._providers)
        if bool(reasons) != self.is_degraded:
            self.is_degraded = bool(reasons)
            event = EVENT_DEGRADED if self.is_degraded else EVENT_RECOVERED
            self.hass.bus.async_fire(event, {"reasons": list(reasons)})


def statistics_reasons(
    figures: WindowFigures,
    slo: CommandSlo,
    below_target: list[EntityFigures],
    options: HubOptions,
) -> Texts:
    """Return the command statistics' reasons: success and latency targets missed.

    Success is judged on evidence (slo.py): the window's failures show a rate below
    the target, or else the error budget burns fast in a long and a short window
    alike (a collapse the window's long history still hides).
    `below_target`: the entities whose own failures show a rate below the target,
    each of which is a reason.
    """
    reasons: list[str] = []
    target = options.success_target
    rate = figures.success_rate
    if rate is not None and slo.below_target:
        reasons.append(
            f"All tracked entities: {figures.failed} of {figures.commands} commands failed "
            f"({rate:.1f} % < {target:g} %)"
        )
    elif slo.alerts:
        # The window's rate does not show it yet: the most urgent alert says why.
        reasons.append(_burn_reason(slo.alerts[0]))
    successes = figures.counts[OUTCOME_SUCCESS]
    p95 = figures.latency_p95
    if p95 is not None and successes >= options.min_samples and p95 > options.latency_target:
        reasons.append(
            f"Command latency p95 {p95:.2f} s > {options.latency_target:g} s "
            f"({successes} successful commands)"
        )
    entities = (
        f"{entity.entity_id}: {entity.failed} of {entity.commands} commands failed "
        f"({entity.success_rate:.1f} % < {target:g} %)"
        for entity in below_target
    )
    return Texts.of([*reasons, *islice(entities, MAX_TEXTS)], len(reasons) + len(below_target))


def _burn_reason(fired: FiringAlert) -> str:
    """Return the reason of a burn-rate alert that fires, in plain words."""
    alert, counts = fired.alert, fired.long_counts
    return (
        f"All tracked entities: error budget burning {fired.long_rate:.1f}x over the last "
        f"{alert.long_window} and {fired.short_rate:.1f}x over {alert.short_window} "
        f"(> {alert.threshold:g}x; {counts.failed} of {counts.commands} commands failed "
        f"in {alert.long_window})"
    )
