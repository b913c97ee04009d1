"""The degraded verdict: reasons gathered from providers, events only on transitions."""

from __future__ import annotations

from collections.abc import Callable

from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback

from .const import EVENT_DEGRADED, EVENT_RECOVERED, OUTCOME_SUCCESS
from .models import HubOptions
from .ranking import EntityFigures
from .statistics import WindowFigures

# A provider returns the causes it sees right now, in plain words.
type ReasonProvider = Callable[[float], list[str]]


class Degradation:
    """Collects reasons from providers and fires degraded / recovered on transitions."""

    def __init__(self, hass: HomeAssistant) -> None:
        """Start healthy with no provider."""
        self.hass = hass
        self.reasons: list[str] = []
        self._providers: list[ReasonProvider] = []

    @property
    def is_degraded(self) -> bool:
        """Return whether anything is wrong."""
        return bool(self.reasons)

    @callback
    def async_add_provider(self, provider: ReasonProvider) -> CALLBACK_TYPE:
        """Add a source of reasons; the returned callback removes it."""
        self._providers.append(provider)
        return lambda: self._providers.remove(provider)

    @callback
    def async_refresh(self, now: float) -> None:
        """Recompute the reasons; fire an event when the verdict flips."""
        reasons = [reason for provider in self._providers for reason in provider(now)]
        was_degraded = self.is_degraded
        self.reasons = reasons
        if self.is_degraded != was_degraded:
            event = EVENT_DEGRADED if self.is_degraded else EVENT_RECOVERED
            self.hass.bus.async_fire(event, {"reasons": list(reasons)})


def statistics_reasons(
    figures: WindowFigures,
    below_target: list[EntityFigures],
    options: HubOptions,
) -> list[str]:
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
    reasons.extend(
        f"{entity.entity_id}: {entity.failed} of {entity.commands} commands failed "
        f"({entity.success_rate:.1f} % < {target:g} %)"
        for entity in below_target
    )
    return reasons
