"""Edge agents seen from the hub: outages past `outage_alert` and the problems they report."""

from __future__ import annotations

from collections.abc import Callable

from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.helpers.dispatcher import async_dispatcher_connect

from .agent_health import AgentHealth
from .agent_link import AgentLink
from .agent_tasks import SloObjective
from .bounds import Texts
from .const import DOMAIN, SIGNAL_AGENT_UPDATE
from .entries import is_agent_entry
from .timing import EarliestCall


class AgentMonitor:
    """Finds the agent entries loaded at the moment and turns their state into reasons.

    The hub and the agents share nothing but this look-up: an agent entry works
    without a hub, and the hub sees agents come and go through the signal they send.
    """

    def __init__(
        self, hass: HomeAssistant, outage_alert: float, on_change: Callable[[], None]
    ) -> None:
        """Start with the alarm disarmed (start-up grace, as for devices)."""
        self.hass = hass
        self.outage_alert = outage_alert
        self._on_change = on_change
        self.armed_at: float | None = None
        self._check = EarliestCall(hass, self._async_on_due)
        self._unsub: CALLBACK_TYPE | None = None

    @callback
    def async_start(self) -> None:
        """Refresh the hub whenever an agent changes."""
        self._unsub = async_dispatcher_connect(self.hass, SIGNAL_AGENT_UPDATE, self._on_change)

    @callback
    def async_arm(self, at: float) -> None:
        """Allow alarms: an agent unavailable since before `at` (monotonic) counts from `at`."""
        self.armed_at = at

    @callback
    def async_stop(self) -> None:
        """Stop listening and checking."""
        if self._unsub is not None:
            self._unsub()
            self._unsub = None
        self._check.cancel()

    def links(self) -> list[AgentLink]:
        """Return the links of the agent entries loaded now, by agent id."""
        links = [
            entry.runtime_data
            for entry in self.hass.config_entries.async_loaded_entries(DOMAIN)
            if is_agent_entry(entry)
        ]
        return sorted(links, key=lambda link: link.agent_id)

    def reasons(self, now: float) -> Texts:
        """Return plain-words reasons as of `now` (monotonic).

        Asks to run again when an outage would cross the alert.
        """
        reasons: list[str] = []
        for link in self.links():
            health = link.availability.health
            if (outage := link.availability.outage()) is not None:
                if self.armed_at is None:
                    continue
                since, why = outage
                alarm_at = max(since, self.armed_at) + self.outage_alert
                if now >= alarm_at:
                    reasons.append(
                        f"agent {link.agent_id}: {why} for more than {self.outage_alert:g} s"
                    )
                else:
                    self._check.request(alarm_at)
            elif health is not None:
                reasons.extend(f"agent {link.agent_id}: {why}" for why in _health_reasons(health))
        return Texts.from_list(reasons)

    @callback
    def _async_on_due(self, now: float) -> None:
        """An outage may have crossed the alert: let the hub recompute."""
        self._on_change()


def _health_reasons(health: AgentHealth) -> list[str]:
    """Return what an online agent reports short of healthy, in plain words.

    Its problems are its own judgement of its figures, task figures included
    (thresholds from its configuration); each objective at risk or breached is one more.
    """
    reasons = list(health.problems)
    if not reasons and health.status != "ok":
        reasons.append(f"status {health.status}")
    if health.slo is not None:
        reasons.extend(_objective_reason(objective) for objective in health.slo.objectives)
    return [reason for reason in reasons if reason]


def _objective_reason(objective: SloObjective) -> str:
    """Return an objective's reason when it is at risk or breached, else an empty text."""
    budget = objective.budget_remaining_pct
    left = "" if budget is None else f", {budget:.0f} % of its error budget left"
    if objective.status == "breached":
        return f"SLO {objective.name} breached ({_sli(objective)}{left})"
    if objective.status == "at_risk":
        return f"SLO {objective.name} at risk ({_sli(objective)}{left}{_burn(objective)})"
    return ""


def _sli(objective: SloObjective) -> str:
    """Return the objective's level against its target, in plain words."""
    if objective.sli_pct is None:
        return f"target {objective.target_pct:g} %"
    return f"{objective.sli_pct:g} % against {objective.target_pct:g} %"


def _burn(objective: SloObjective) -> str:
    """Return the objective's burn rates that are known."""
    rates = [
        f"{rate:.1f}x over {window}"
        for window, rate in (("1 h", objective.burn_rate_1h), ("6 h", objective.burn_rate_6h))
        if rate is not None
    ]
    return f"; burning its budget {' and '.join(rates)}" if rates else ""
