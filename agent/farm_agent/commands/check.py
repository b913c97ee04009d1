"""`farm-agent check`: every probe once, judged like the agent does; Home Assistant, a canary."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from farm_agent.checks import CheckOutcome, skipped
from farm_agent.config import AgentConfig
from farm_agent.failures import DATABASE_ERRORS, describe_failure
from farm_agent.health.judging import Health, with_more_problems
from farm_agent.health.once import check_once
from farm_agent.health.probes.home_assistant import check_home_assistant
from farm_agent.health.status import HealthStatus
from farm_agent.masking import mask, secrets_of
from farm_agent.tasks.canary import NAME as ROUNDTRIP
from farm_agent.tasks.canary import task_roundtrip

EXIT_OK = 0
EXIT_PROBLEM = 1
STATUS_STYLE = {HealthStatus.OK: "green", HealthStatus.DOWN: "bold red"}
OBJECTIVE_STYLE = {"ok": "green", "breached": "bold red", "unknown": "dim"}


def run_check(config: AgentConfig, as_json: bool) -> int:
    """The `check` command: exit 0 when ok, 1 when degraded or down."""
    health, checks = asyncio.run(_check_everything(config))
    health = with_more_problems(health, [c.problem for c in checks if c.problem is not None])
    secrets = secrets_of(config)
    if as_json:
        body = {**health.as_json(), **{check.name: check.as_json() for check in checks}}
        sys.stdout.write(mask(json.dumps(body, separators=(",", ":")), secrets) + "\n")
    else:
        render(health, secrets, wide_console(), checks)
    return EXIT_OK if health.status == HealthStatus.OK else EXIT_PROBLEM


async def _check_everything(config: AgentConfig) -> tuple[Health, tuple[CheckOutcome, ...]]:
    """The probes, Home Assistant and a canary task, all at once (each bounds its own time)."""
    timeout_s = config.probes.timeout_s
    health, home_assistant, roundtrip = await asyncio.gather(
        check_once(config),
        check_home_assistant(config.home_assistant, timeout_s),
        _bounded_roundtrip(config),
    )
    return health, (home_assistant, roundtrip)


async def _bounded_roundtrip(config: AgentConfig) -> CheckOutcome:
    """The canary's round trip; skipped when the database does not answer (the probes say so)."""
    try:
        return await task_roundtrip(config)
    except DATABASE_ERRORS as err:
        return skipped(ROUNDTRIP, f"the database does not answer ({describe_failure(err)})")


def wide_console() -> Console:
    """A console for the answer: the terminal's width, or wide when piped to a file or journal."""
    return Console(width=None if sys.stdout.isatty() else 160, highlight=False)


def render(
    health: Health, secrets: list[str], console: Console, checks: Sequence[CheckOutcome] = ()
) -> None:
    """The health as a table a person reads at a glance; then the end-to-end checks."""
    table = Table(title=f"farm-agent {health.agent_id} - {health.ts}")
    for column in ("probe", "kind", "ok", "latency", "detail"):
        table.add_column(column, no_wrap=column != "detail")
    for probe in health.probes:
        latency = "-" if probe.latency_ms is None else f"{probe.latency_ms:.1f} ms"
        ok = "[green]yes[/]" if probe.ok else "[red]NO[/]"
        table.add_row(probe.name, probe.kind, ok, latency, escape(mask(probe.detail, secrets)))
    # The task figures' checks (task_checks.py): "-" where there was nothing to judge.
    for check in health.task_checks:
        ok = "-" if check.ok is None else "[green]yes[/]" if check.ok else "[red]NO[/]"
        table.add_row(escape(check.name), "tasks", ok, "-", escape(mask(check.detail, secrets)))
    console.print(table)
    figures = health.as_json()
    for section in ("backend", "queue"):
        shown = ", ".join(f"{key} {_shown(value)}" for key, value in figures[section].items())
        console.print(f"[bold]{section}[/]: {escape(shown)}")
    for outcome in checks:
        verdict = {True: "[green]ok[/]", False: "[red]FAILED[/]", None: "skipped"}[outcome.ok]
        took = "" if outcome.latency_ms is None else f" in {outcome.latency_ms:.0f} ms"
        detail = escape(mask(outcome.detail.removeprefix("skipped: "), secrets))
        console.print(f"[bold]{outcome.name}[/]: {verdict}{took}: {detail}")
    console.print(objectives_table(figures["slo"]))
    for problem in health.problems:
        console.print(f"[yellow]problem[/]: {escape(mask(problem, secrets))}")
    style = STATUS_STYLE.get(health.status, "yellow")
    console.print(f"status: [{style}]{health.status}[/]")


def objectives_table(slo: dict[str, Any]) -> Table:
    """The objectives as the health JSON has them: one line each, unknown where not measured."""
    table = Table(title=f"service level objectives over {slo['window_days']} days")
    for column in ("objective", "target", "SLI", "budget left", "burn 1h", "burn 6h", "status"):
        table.add_column(column, no_wrap=True)
    for objective in slo["objectives"]:
        status = objective["status"]
        table.add_row(
            objective["name"],
            f"{objective['target_pct']:g} %",
            _unit(objective["sli_pct"], " %"),
            _unit(objective["budget_remaining_pct"], " %"),
            _unit(objective["burn_rate_1h"], "x"),
            _unit(objective["burn_rate_6h"], "x"),
            f"[{OBJECTIVE_STYLE.get(status, 'yellow')}]{status}[/]",
        )
    return table


def _unit(value: float | None, unit: str) -> str:
    return "-" if value is None else f"{value:g}{unit}"


def _shown(value: object) -> str:
    return "unknown" if value is None else str(value)
