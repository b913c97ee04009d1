"""The degraded verdict: reasons gathered from providers, events only on transitions."""

from __future__ import annotations

from collections.abc import Callable
from itertools import islice

from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback

from .bounds import MAX_TEXTS, Texts, bounded
from .const import EVENT_DEGRADED, EVENT_RECOVERED, OUTCOME_SUCCESS
from .models import HubOptions
from .ranking import EntityFigures
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
    below_target: list[EntityFigures],
    options: HubOptions,
) -> Texts:
    """Return the command statistics' reasons: success and latency targets missed.

    `below_target`: the entities with at least `min_samples` commands and a success
    rate below the target, each of which is a reason.
    """
    reasons: list[str] = []
    target = options.success_target
    rate = figures.success_rate
    if rate is not None and figures.commands >= options.min_samples and rate < target:
        reasons.append(
            f"All tracked entities: {figures.failed} of {figures.commands} commands failed "
            f"({rate:.1f} % < {target:g} %)"
        )
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
