"""Command success as a service level objective: error budget, burn rates, evidence.

The objective is `success_target` of the counted commands over the window. Its
error budget is the failures the target allows: (1 - target) x commands. What
is left of it may go negative: -150 % means 2.5 times the allowed failures, which
says more than a flat 0 would (a clamped figure hides how far over budget it is).
"""

from __future__ import annotations

from dataclasses import dataclass

from . import evidence
from .burn import WINDOWS, FiringAlert, WindowCounts, burn_rate, firing
from .statistics import WindowFigures


@dataclass(frozen=True, slots=True)
class CommandSlo:
    """The command success objective as of one moment."""

    target_pct: float
    # Failures the target allows in the window; None without commands.
    allowed_failures: float | None
    # 100 x (1 - failures / allowed failures); None without commands or with no budget (100 %).
    budget_remaining_pct: float | None
    # Window name (burn.WINDOWS) -> burn rate; None for a window without commands.
    burn_rates: dict[str, float | None]
    # The window's failures show, with FLEET_CONFIDENCE, a success rate below the target.
    below_target: bool
    alerts: list[FiringAlert]


def command_slo(
    figures: WindowFigures,
    burn_counts: dict[str, WindowCounts],
    *,
    target_pct: float,
    min_samples: int,
) -> CommandSlo:
    """Return the objective's figures from the window's and the burn windows' counts."""
    budget = 1.0 - target_pct / 100.0
    allowed = budget * figures.commands if figures.commands else None
    remaining = None
    if allowed:  # neither without commands nor with a target of 100 %
        remaining = 100.0 * (1.0 - figures.failed / allowed)
    return CommandSlo(
        target_pct=target_pct,
        allowed_failures=allowed,
        budget_remaining_pct=remaining,
        burn_rates={name: burn_rate(burn_counts[name], target_pct) for name in WINDOWS},
        below_target=figures.commands >= min_samples
        and evidence.below_target(
            figures.commands, figures.failed, target_pct, evidence.FLEET_CONFIDENCE
        ),
        alerts=firing(burn_counts, target_pct, min_samples),
    )
