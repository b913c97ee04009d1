"""`farm-agent loadtest`: the arguments, the safety checks, progress and the figures.

Safe by default for a production database: the query is `SELECT 1` unless `--query`
names another, which runs in a READ ONLY transaction (the server refuses a write,
and the command stops with exit 2 before any load); at most MAX_CLIENTS clients for
at most MAX_DURATION_S per route; and before loading a host that is not this
machine it says what it will do and asks, unless `--yes`. Without a terminal to ask
and without `--yes` it refuses. The measuring is `farm_agent.health.loadtest`.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import asyncpg
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from farm_agent.commands.check import wide_console
from farm_agent.config import AgentConfig
from farm_agent.database import Route, is_loopback, routes
from farm_agent.failures import DATABASE_ERRORS, is_connection_failure
from farm_agent.health.loadtest import (
    DEFAULT_QUERY,
    LoadPlan,
    LoadReport,
    Progress,
    run_loadtest,
    try_query,
)
from farm_agent.masking import mask, secrets_of

EXIT_RAN = 0
EXIT_ROUTE_FAILED = 1
EXIT_BAD_INPUT = 2
MAX_CLIENTS = 1000
MAX_DURATION_S = 600.0
ROUTE_CHOICES = {
    "pooler": (Route.POOLER,),
    "direct": (Route.DIRECT,),
    "both": (Route.POOLER, Route.DIRECT),
}


class LoadInputError(ValueError):
    """An option or the config does not allow this load test; the text names which."""


@dataclass(frozen=True, slots=True)
class LoadRequest:
    """One `loadtest` command as typed."""

    clients: int = 100
    duration_s: float = 60.0
    route: str = "both"
    query: str | None = None
    as_json: bool = False
    yes: bool = False


def run_loadtest_command(
    config: AgentConfig,
    request: LoadRequest,
    ask: Callable[[str], str] | None = None,
    interactive: bool | None = None,
) -> int:
    """Exit 0 when every route ran, 1 when one answered no query at all, 2 for bad input."""
    secrets = secrets_of(config)
    try:
        chosen = _routes(config, request)
        plan = _plan(request)
        if not _confirmed(config, request, chosen, ask, interactive):
            print("farm-agent: loadtest: nothing done", file=sys.stderr)
            return EXIT_ROUTE_FAILED
        report = asyncio.run(_run(config, chosen, plan))
    except LoadInputError as err:
        print(f"farm-agent: loadtest: {mask(str(err), secrets)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if request.as_json:
        sys.stdout.write(mask(json.dumps(report.as_json()), secrets) + "\n")
    else:
        render(report, wide_console())
    failed = any(figures.failed for figures in report.routes.values())
    return EXIT_ROUTE_FAILED if failed else EXIT_RAN


def _routes(config: AgentConfig, request: LoadRequest) -> list[Route]:
    configured = routes(config.backend)
    wanted = ROUTE_CHOICES[request.route]
    if request.route != "both":
        missing = [route for route in wanted if route not in configured]
        if missing:
            raise LoadInputError(f"--route {request.route}: backend.{missing[0]}_dsn is not set")
    return [route for route in wanted if route in configured]


def _plan(request: LoadRequest) -> LoadPlan:
    if not 1 <= request.clients <= MAX_CLIENTS:
        raise LoadInputError(f"--clients: must be 1-{MAX_CLIENTS} (got {request.clients})")
    if not 0 < request.duration_s <= MAX_DURATION_S:
        raise LoadInputError(
            f"--duration: must be more than 0 and at most {MAX_DURATION_S:g} s"
            f" (got {request.duration_s:g})"
        )
    query = (request.query or "").strip().rstrip(";").strip()
    if request.query is not None and not query:
        raise LoadInputError("--query: empty")
    return LoadPlan(
        clients=request.clients,
        duration_s=request.duration_s,
        query=query or DEFAULT_QUERY,
        read_only_transaction=request.query is not None,
    )


def _confirmed(
    config: AgentConfig,
    request: LoadRequest,
    chosen: list[Route],
    ask: Callable[[str], str] | None,
    interactive: bool | None,
) -> bool:
    """True unless a remote host is to be loaded and nobody said yes."""
    configured = routes(config.backend)
    remote = [
        f"{route} ({_host(configured[route])})"
        for route in chosen
        if not is_loopback(urlsplit(configured[route]).hostname or "")
    ]
    if not remote or request.yes:
        return True
    print(
        f"farm-agent loadtest: {', '.join(remote)} is not on this machine. This opens"
        f" {request.clients} connections to each route in turn, for {request.duration_s:g} s"
        f" each, and runs `{request.query or DEFAULT_QUERY}` as fast as they answer.",
        file=sys.stderr,
    )
    if interactive is None:
        interactive = sys.stdin.isatty()
    if not interactive:
        raise LoadInputError(
            "refusing to load a remote database without --yes: there is no terminal to ask"
        )
    return (ask or _ask)("Continue? [y/N] ").strip().lower() in ("y", "yes")


def _ask(prompt: str) -> str:
    """The prompt on stderr (stdout holds only the figures), the answer from stdin."""
    print(prompt, end="", file=sys.stderr, flush=True)
    return sys.stdin.readline()


def _host(dsn: str) -> str:
    parts = urlsplit(dsn)
    return f"{parts.hostname}:{parts.port or 5432}"


async def _run(config: AgentConfig, chosen: list[Route], plan: LoadPlan) -> LoadReport:
    backend = config.backend
    if plan.read_only_transaction and chosen:
        try:
            await try_query(chosen[0], backend, plan)
        except DATABASE_ERRORS as err:
            if not is_connection_failure(err) and isinstance(err, asyncpg.PostgresError):
                raise LoadInputError(f"--query: the server refused it: {err}") from err
            # The route itself fails: the load test shows how, route by route.
    return await run_loadtest(backend, chosen, plan, _show_progress)


def _show_progress(progress: Progress) -> None:
    print(progress.line(), file=sys.stderr, flush=True)


def render(report: LoadReport, console: Console) -> None:
    """The figures as a table, then exhaustion and the pooler's speed-up in words."""
    table = Table(title="farm-agent loadtest")
    for column in ("route", "clients", "connect ms p50/p95/p99", "query ms p50/p95/p99"):
        table.add_column(column, no_wrap=True)
    for column in ("queries", "queries/s", "errors"):
        table.add_column(column)
    for route, figures in report.routes.items():
        errors = ", ".join(f"{kind} {count}" for kind, count in sorted(figures.errors.items()))
        table.add_row(
            str(route),
            str(figures.clients),
            _percentiles(figures.connect_ms),
            _percentiles(figures.query_ms),
            f"{figures.queries:,}",
            f"{figures.throughput_per_s:,.0f}",
            escape(errors or "none"),
        )
    console.print(table)
    for route, figures in report.routes.items():
        for sentence in figures.exhaustion:
            console.print(f"[yellow]{route}[/]: {escape(sentence)}")
        if figures.failed:
            console.print(f"[red]{route}[/]: no query answered")
    speedup = report.speedup
    if speedup is not None:
        verdict = "faster than" if speedup >= 1 else "slower than"
        console.print(f"pooler: {speedup:.2f}x the direct throughput ({verdict} direct)")


def _percentiles(figures: dict[str, float | None]) -> str:
    return "/".join("-" if value is None else f"{value:g}" for value in figures.values())
