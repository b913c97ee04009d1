"""The objectives on /metrics: SLI, error budget left and burn rates, as `…_ratio` gauges."""

from __future__ import annotations

import math
from fractions import Fraction

from farm_agent.health.slo import WINDOW_MINUTES, SloReport
from farm_agent.metrics import Metrics


class SloMetrics:
    """Each objective's figures, labelled by objective (and window); NaN while unknown."""

    def __init__(self, metrics: Metrics) -> None:
        self.sli = metrics.labelled_gauge(
            "farm_agent_slo_sli_ratio",
            "Share of the objective's events that were good over its window (the SLI)",
            ["objective"],
        )
        self.budget_remaining = metrics.labelled_gauge(
            "farm_agent_slo_budget_remaining_ratio",
            "Error budget left over the window: 1 untouched, 0 spent, below 0 overspent",
            ["objective"],
        )
        self.burn_rate = metrics.labelled_gauge(
            "farm_agent_slo_burn_rate",
            "Error rate over the window (5m, 30m, 1h, 6h) divided by the budgeted error rate",
            ["objective", "window"],
        )

    def record(self, report: SloReport) -> None:
        for objective in report.objectives:
            name = objective.name
            self.sli.labels(objective=name).set(_value(objective.sli))
            self.budget_remaining.labels(objective=name).set(_value(objective.budget_remaining))
            for window in WINDOW_MINUTES:
                rate = objective.burn_rates[window]
                self.burn_rate.labels(objective=name, window=window).set(_value(rate))


def _value(value: Fraction | None) -> float:
    return math.nan if value is None else float(value)
