"""`farm-agent check`: every probe once, judged like the running agent judges it, then shown.

It does not start the relay and does not take the agent's MQTT session: it connects
with a client id of its own and leaves no session behind. Besides what the agent
reports, it lists a database route whose server is not verified (no
`backend.tls.ca_file`), which the agent only logs once at start.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import sqlite3
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from farm_agent.config import AgentConfig
from farm_agent.database import tls_warning
from farm_agent.health.judging import (
    DOWN,
    OK,
    Health,
    RelayState,
    assess,
    first_reachable_route,
    mask,
)
from farm_agent.health.probes import Prober
from farm_agent.health.probes.postgres import routes
from farm_agent.logs import secrets_of
from farm_agent.mqtt.link import MqttLink
from farm_agent.relay.metrics import RelayFigures
from farm_agent.relay.spool import read_depth

_LOGGER = logging.getLogger(__name__)
EXIT_OK = 0
EXIT_PROBLEM = 1
STATUS_STYLE = {OK: "green", DOWN: "bold red"}


async def check_once(config: AgentConfig) -> Health:
    """Run every probe once and judge the result."""
    loop = asyncio.get_running_loop()
    mqtt = dataclasses.replace(
        config.mqtt, client_id=f"{config.mqtt.client_id}-check", session_expiry_s=0
    )
    link = MqttLink(mqtt, loop)
    prober = Prober(config, link)
    link.start()
    try:
        found = await prober.run_round()
    finally:
        await prober.close()
        await link.stop()
    relay = RelayState(
        route=first_reachable_route(config, found),
        fallbacks_total=0,
        figures=idle_relay(config.spool.path),
    )
    return assess(config, found, relay, time.time(), config_problems=tls_problems(config))


def tls_problems(config: AgentConfig) -> list[str]:
    """Routes whose server is not verified (the running agent says so once, at start)."""
    backend = config.backend
    warnings = (tls_warning(name, dsn, backend.tls) for name, dsn in routes(backend).items())
    return [warning for warning in warnings if warning is not None]


def idle_relay(spool_path: Path) -> RelayFigures:
    """This process relays nothing; what waits in the agent's spool is real, though."""
    return RelayFigures(
        received_total=0,
        relayed_total=0,
        dead_lettered_total=0,
        spool_depth=spool_depth(spool_path),
        e2e_latency_p95_ms=None,
        spool_full=False,
    )


def spool_depth(path: Path) -> int:
    """Readings in the spool file, read-only (the agent may be running); 0 if there is none."""
    try:
        return read_depth(path)
    except sqlite3.Error as err:
        _LOGGER.warning("cannot read the spool %s (%s); its depth shows as 0", path, err)
        return 0


def run_check(config: AgentConfig, as_json: bool) -> int:
    """The `check` command: exit 0 when ok, 1 when degraded or down."""
    health = asyncio.run(check_once(config))
    secrets = secrets_of(config)
    if as_json:
        sys.stdout.write(health.to_text(secrets) + "\n")
    else:
        render(health, secrets, wide_console())
    return EXIT_OK if health.status == OK else EXIT_PROBLEM


def wide_console() -> Console:
    """A console for the answer: the terminal's width, or wide when piped to a file or journal."""
    return Console(width=None if sys.stdout.isatty() else 160, highlight=False)


def render(health: Health, secrets: list[str], console: Console) -> None:
    """The health as a table a person reads at a glance."""
    table = Table(title=f"farm-agent {health.agent_id} - {health.ts}")
    for column in ("probe", "kind", "ok", "latency", "detail"):
        table.add_column(column, no_wrap=column != "detail")
    for probe in health.probes:
        latency = "-" if probe.latency_ms is None else f"{probe.latency_ms:.1f} ms"
        ok = "[green]yes[/]" if probe.ok else "[red]NO[/]"
        table.add_row(probe.name, probe.kind, ok, latency, escape(mask(probe.detail, secrets)))
    console.print(table)
    figures = health.as_json()
    for section in ("backend", "queue"):
        shown = ", ".join(f"{key} {_shown(value)}" for key, value in figures[section].items())
        console.print(f"[bold]{section}[/]: {escape(shown)}")
    for problem in health.problems:
        console.print(f"[yellow]problem[/]: {escape(mask(problem, secrets))}")
    style = STATUS_STYLE.get(health.status, "yellow")
    console.print(f"status: [{style}]{health.status}[/]")


def _shown(value: object) -> str:
    return "unknown" if value is None else str(value)
