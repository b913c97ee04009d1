"""The agent's health: probe results and relay figures, judged against the thresholds.

`status` is `down` when no route reaches the database or the broker is unreachable
(the relay cannot work), `degraded` when anything crosses a threshold, `ok` otherwise.
Every problem is a plain sentence naming the figure and the threshold; the list is
bounded (`bound_problems`), because it travels into Home Assistant's attributes,
events and recorder. A figure that cannot be known is None (JSON null), never a
made-up zero.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from farm_agent import __version__
from farm_agent.config import AgentConfig, Thresholds
from farm_agent.database import Route, routes
from farm_agent.health.cache_targets import cache_problems
from farm_agent.health.probes.pool import is_exhaustion, pool_exhaustion
from farm_agent.health.probes.postgres import probe_name
from farm_agent.health.probes.result import ProbeKind, ProbeResult, ProbeRound
from farm_agent.health.slo import SloReport, unknown_report
from farm_agent.health.status import HealthStatus
from farm_agent.health.task_checks import TaskCheck, task_checks, task_problems
from farm_agent.health.wording import figure as _figure
from farm_agent.masking import mask
from farm_agent.relay import RelaySnapshot
from farm_agent.tasks import TaskHealth
from farm_agent.timestamps import format_timestamp

HEALTH_VERSION = 1
# At most this many problems of at most this many characters each, in every report.
MAX_PROBLEMS = 20
MAX_PROBLEM_CHARS = 200


@dataclass(frozen=True, slots=True)
class BackendHealth:
    route: Route
    fallbacks_total: int
    pooler_latency_ms: float | None
    direct_latency_ms: float | None


@dataclass(frozen=True, slots=True)
class QueueHealth:
    name: str
    depth: int | None
    oldest_age_s: float | None
    dlq_depth: int | None
    processing_p50_s: float | None
    processing_p95_s: float | None
    task_success_pct: float | None


@dataclass(frozen=True, slots=True)
class Health:
    """One health report, as published on `<prefix>/agent/<id>/health`."""

    agent_id: str
    ts: str
    status: HealthStatus
    backend: BackendHealth
    queue: QueueHealth
    relay: RelaySnapshot
    probes: tuple[ProbeResult, ...]
    problems: tuple[str, ...]
    slo: SloReport
    # The task queues and workers (None: no task queue exists), and each check of them.
    tasks: TaskHealth | None = None
    task_checks: tuple[TaskCheck, ...] = ()
    version: str = __version__

    def as_json(self) -> dict[str, Any]:
        """The contract's JSON shape (docs/contracts.md, "Health"), extensions marked there."""
        backend, queue, relay = self.backend, self.queue, self.relay
        return {
            "v": HEALTH_VERSION,
            "agent_id": self.agent_id,
            "ts": self.ts,
            "status": self.status,
            "backend": {
                "route": backend.route,
                "fallbacks_total": backend.fallbacks_total,
                "pooler_latency_ms": _round(backend.pooler_latency_ms, 2),
                "direct_latency_ms": _round(backend.direct_latency_ms, 2),
            },
            "queue": {
                "name": queue.name,
                "depth": queue.depth,
                "oldest_age_s": queue.oldest_age_s,
                "dlq_depth": queue.dlq_depth,
                "processing_p50_s": _round(queue.processing_p50_s, 3),
                "processing_p95_s": _round(queue.processing_p95_s, 3),
                "task_success_pct": _round(queue.task_success_pct, 2),
            },
            "relay": {
                "received_total": relay.received_total,
                "relayed_total": relay.relayed_total,
                "dead_lettered_total": relay.dead_lettered_total,
                "spool_depth": relay.spool_depth,
                "e2e_latency_p95_ms": _round(relay.e2e_latency_p95_ms, 1),
            },
            "probes": [probe.as_json() for probe in self.probes],
            "problems": list(self.problems),
            "tasks": self.tasks.as_json() if self.tasks is not None else None,
            "version": self.version,
            "slo": self.slo.as_json(),
        }

    def to_text(self, secrets: list[str]) -> str:
        """The JSON text, with any configured secret masked (last line of defence)."""
        return mask(json.dumps(self.as_json(), separators=(",", ":")), secrets)


def assess(
    config: AgentConfig,
    found: ProbeRound,
    relay: RelaySnapshot,
    now: float,
    *,
    config_problems: Sequence[str] = (),
    slo: SloReport | None = None,
) -> Health:
    """Judge one probe round and the relay's state against the configured thresholds.

    `config_problems` come first: what is wrong with the settings themselves. The
    objectives (`slo`, all unknown when not given) add a problem each at risk or breached.
    """
    slo = slo if slo is not None else unknown_report(config.slo)
    thresholds = config.probes.thresholds
    latencies = {route: _latency(found, route) for route in (Route.POOLER, Route.DIRECT)}
    reachable = [route for route in routes(config.backend) if latencies[route] is not None]
    section = found.tasks.section if found.tasks is not None else None
    checks = task_checks(section, thresholds) if section is not None else ()
    problems = [
        *config_problems,
        *_database_problems(config, found, reachable, thresholds),
        *_queue_problems(found, thresholds, bool(reachable)),
        *task_problems(checks),
        *_probe_problems(found),
        *cache_problems(config, found),
    ]
    problems.extend(found.subscription_problems)
    if relay.spool_full:
        problems.append("spool full: new readings wait on the broker unacknowledged")
    if relay.spool_disk_full:
        problems.append("spool disk full: new readings wait on the broker unacknowledged")
    problems.extend(slo.problems)
    down = not reachable or not found.broker_connected
    status = HealthStatus.DOWN if down else HealthStatus.DEGRADED if problems else HealthStatus.OK
    figures, tasks = found.queue, found.tasks
    return Health(
        agent_id=config.agent_id,
        ts=format_timestamp(now),
        status=status,
        backend=BackendHealth(
            route=relay.route,
            fallbacks_total=relay.fallbacks_total,
            pooler_latency_ms=latencies[Route.POOLER],
            direct_latency_ms=latencies[Route.DIRECT],
        ),
        queue=QueueHealth(
            name=config.backend.queue,
            depth=figures.depth if figures else None,
            oldest_age_s=figures.oldest_age_s if figures else None,
            dlq_depth=figures.dlq_depth if figures else None,
            processing_p50_s=tasks.processing_p50_s if tasks else None,
            processing_p95_s=tasks.processing_p95_s if tasks else None,
            task_success_pct=tasks.task_success_pct if tasks else None,
        ),
        relay=relay,
        probes=found.results,
        problems=bound_problems(problems),
        slo=slo,
        tasks=section,
        task_checks=checks,
    )


def with_more_problems(health: Health, more: Sequence[str]) -> Health:
    """The report with further problems (what `check` finds beyond the probes); ok -> degraded."""
    if not more:
        return health
    status = HealthStatus.DEGRADED if health.status == HealthStatus.OK else health.status
    problems = bound_problems([*health.problems, *more])
    return dataclasses.replace(health, status=status, problems=problems)


def bound_problems(problems: Sequence[str]) -> tuple[str, ...]:
    """At most MAX_PROBLEMS sentences of at most MAX_PROBLEM_CHARS; the last counts the rest."""
    cut = [
        text if len(text) <= MAX_PROBLEM_CHARS else f"{text[: MAX_PROBLEM_CHARS - 1]}…"
        for text in problems
    ]
    if len(cut) <= MAX_PROBLEMS:
        return tuple(cut)
    kept = cut[: MAX_PROBLEMS - 1]
    return (*kept, f"and {len(cut) - len(kept)} more")


def first_reachable_route(config: AgentConfig, found: ProbeRound) -> Route:
    """The route the relay would take now: the first configured one that answered."""
    for route in routes(config.backend):
        if _latency(found, route) is not None:
            return route
    return Route.NONE


def _latency(found: ProbeRound, route: Route) -> float | None:
    name = probe_name(route)
    result = next((probe for probe in found.databases if probe.name == name), None)
    return result.latency_ms if result is not None and result.ok else None


def _database_problems(
    config: AgentConfig, found: ProbeRound, reachable: list[Route], thresholds: Thresholds
) -> list[str]:
    configured = list(routes(config.backend))
    if not reachable:
        verb = "both fail" if len(configured) > 1 else "fails"
        return [f"no route to the database: {' and '.join(configured)} {verb}"]
    problems = []
    for route in configured:
        name = probe_name(route)
        result = next(probe for probe in found.databases if probe.name == name)
        if not result.ok:
            # Exhaustion is said whole, with its figure; other errors by their class.
            reason = result.detail if is_exhaustion(result.detail) else result.detail.split(":")[0]
            problems.append(f"{route} down: {reason}")
        elif result.latency_ms is not None and result.latency_ms > thresholds.query_ms:
            problems.append(
                f"{route} query {_figure(result.latency_ms)} ms > {_figure(thresholds.query_ms)} ms"
            )
        figures = result.pool.figures if result.pool is not None else None
        exhausted = pool_exhaustion(figures) if figures is not None and result.ok else None
        if exhausted is not None:
            problems.append(f"{route} {exhausted}")
    return problems


def _queue_problems(found: ProbeRound, thresholds: Thresholds, reachable: bool) -> list[str]:
    problems = []
    figures, tasks = found.queue, found.tasks
    if figures is not None:
        if figures.depth > thresholds.queue_depth:
            problems.append(f"queue depth {figures.depth} > {thresholds.queue_depth}")
        if figures.dlq_depth > thresholds.dlq_depth:
            problems.append(f"dead-letter queue holds {figures.dlq_depth} > {thresholds.dlq_depth}")
    # The workers' figures are judged type by type, on evidence (task_checks.py).
    if tasks is not None and not tasks.from_workers:
        p95, success = tasks.processing_p95_s, tasks.task_success_pct
        if p95 is not None and p95 > thresholds.processing_s:
            problems.append(
                f"task processing p95 {_figure(p95)} s > {_figure(thresholds.processing_s)} s"
            )
        if success is not None and success < thresholds.task_success:
            problems.append(
                f"task success {_figure(success)} % < {_figure(thresholds.task_success)} %"
            )
    if reachable:
        # With no route at all, one sentence says it; otherwise name what could not be read.
        for kind, figures_of in ((ProbeKind.QUEUE, "queue"), (ProbeKind.TASKS, "task")):
            result = found.result(kind)
            if result is not None and not result.ok:
                problems.append(f"{figures_of} figures unknown: {result.detail}")
    return problems


def _probe_problems(found: ProbeRound) -> list[str]:
    problems = []
    for result in found.results:
        if result.ok or result.kind in (ProbeKind.POSTGRES, ProbeKind.QUEUE, ProbeKind.TASKS):
            continue
        if result.kind == ProbeKind.MQTT:
            problems.append(f"MQTT round trip failed: {result.detail}")
        else:
            problems.append(f"{result.name}: {result.detail}")
    return problems


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)
