"""The weekly review's figures: what the history and the task figures say about a period.

Hour by hour over the period (the last `days` days up to now): per probe series, the
rounds that passed and the latency p50/p95 (read from the merged histograms, within
4.9 %); the relay's largest queue depth, spool depth and relay p95 of each hour; each
objective's budget left at the end of the hour and its worst status in it; per task
type, the tasks settled and their p95 (from the database). Incidents are the
intervals, at minute resolution, in which an objective was at risk or breached, or a
database route failed every probe of each minute. `farm-agent report` renders them;
`as_json()` is what the page carries for machines, the same figures it plots.
"""

from __future__ import annotations

import asyncio
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from farm_agent import __version__, database, histogram
from farm_agent.config import AgentConfig
from farm_agent.failures import DATABASE_ERRORS, describe_failure
from farm_agent.health.history import History
from farm_agent.health.history_rows import Judgement, Outcome, RelayFigures, SeriesMinute
from farm_agent.task_outcomes import TaskMinute, task_minutes

# Worst first: an hour shows the worst status an objective had in it.
STATUS_ORDER = ("breached", "at_risk", "ok", "unknown")
ROUTE_PREFIX = "postgres/database_"


@dataclass(frozen=True, slots=True)
class Incident:
    """An interval [start, end) in which something was wrong, at minute resolution."""

    what: str
    subject: str
    start_s: int
    end_s: int

    def as_json(self) -> dict[str, Any]:
        return {
            "what": self.what,
            "subject": self.subject,
            "start_s": self.start_s,
            "end_s": self.end_s,
            "minutes": (self.end_s - self.start_s) // 60,
        }


@dataclass(frozen=True, slots=True)
class Review:
    """The period's figures, hour by hour (hours as epoch seconds of their start)."""

    agent_id: str
    version: str
    start_s: int
    end_s: int
    hours: tuple[int, ...]
    probes: dict[str, list[dict[str, Any]]]
    probe_totals: dict[str, dict[str, Any]]
    relay: list[dict[str, Any]]
    objectives: dict[str, list[dict[str, Any]]]
    tasks: dict[str, list[dict[str, Any]]]
    tasks_note: str | None
    incidents: tuple[Incident, ...]

    def as_json(self) -> dict[str, Any]:
        return {
            "agent_id": self.agent_id,
            "version": self.version,
            "start_s": self.start_s,
            "end_s": self.end_s,
            "hours": list(self.hours),
            "probes": self.probes,
            "probe_totals": self.probe_totals,
            "relay": self.relay,
            "objectives": self.objectives,
            "tasks": self.tasks,
            "tasks_note": self.tasks_note,
            "incidents": [incident.as_json() for incident in self.incidents],
        }


async def gather_review(config: AgentConfig, history: History, days: int, now: float) -> Review:
    """The period's figures from the history (read only) and the workers' figures."""
    last = history.minute_at(now)
    first = last - days * 1440 + 1
    hours = tuple(range(first // 60, last // 60 + 1))
    minutes, relay, judged = await asyncio.to_thread(_read_history, history, first, last)
    tasks, note = await _read_tasks(config, first * 60, (last + 1) * 60)
    gap = math.ceil(config.probes.interval_s / 60) + 1
    return Review(
        agent_id=config.agent_id,
        version=__version__,
        start_s=first * 60,
        end_s=(last + 1) * 60,
        hours=tuple(hour * 3600 for hour in hours),
        probes=probe_hours(minutes, hours),
        probe_totals=probe_totals(minutes),
        relay=relay_hours(relay, hours),
        objectives=objective_hours(judged, hours),
        tasks=task_hours(tasks, hours),
        tasks_note=note,
        incidents=tuple(
            _in_order([*objective_incidents(judged, gap), *route_incidents(minutes, gap)])
        ),
    )


def _read_history(
    history: History, first: int, last: int
) -> tuple[
    list[SeriesMinute], list[tuple[int, RelayFigures]], list[tuple[int, dict[str, Judgement]]]
]:
    return (
        history.series_minutes(first, last),
        history.relay_minutes(first, last),
        history.judged_minutes(first, last),
    )


async def _read_tasks(
    config: AgentConfig, start_s: float, end_s: float
) -> tuple[list[TaskMinute], str | None]:
    timeout_s = config.probes.timeout_s
    try:
        _, connection = await database.connect_any(config.backend, timeout_s)
        try:
            return await asyncio.wait_for(task_minutes(connection, start_s, end_s), timeout_s), None
        finally:
            await database.close_quietly(connection)
    except asyncpg.UndefinedTableError:
        return [], "no worker has run against this database"
    except DATABASE_ERRORS as err:
        return [], f"task figures unknown: {describe_failure(err)}"


# Hour by hour ---------------------------------------------------------------------


def probe_hours(
    minutes: Iterable[SeriesMinute], hours: Sequence[int]
) -> dict[str, list[dict[str, Any]]]:
    """Per series and hour: rounds, passed, availability % and latency p50/p95 in ms."""
    sums: dict[str, dict[int, Outcome]] = defaultdict(dict)
    for row in minutes:
        hour = row.minute // 60
        sums[row.series][hour] = sums[row.series].get(hour, Outcome()) + row.outcome
    return {
        series: [_probe_figures(by_hour.get(hour, Outcome())) for hour in hours]
        for series, by_hour in sorted(sums.items())
    }


def probe_totals(minutes: Iterable[SeriesMinute]) -> dict[str, dict[str, Any]]:
    """Per series, the whole period."""
    sums: dict[str, Outcome] = {}
    for row in minutes:
        sums[row.series] = sums.get(row.series, Outcome()) + row.outcome
    return {series: _probe_figures(outcome) for series, outcome in sorted(sums.items())}


def _probe_figures(outcome: Outcome) -> dict[str, Any]:
    return {
        "good": outcome.good,
        "total": outcome.total,
        "availability_pct": _pct(outcome.good, outcome.total),
        "p50_ms": _ms(histogram.quantile(outcome.latency, 0.5)),
        "p95_ms": _ms(histogram.quantile(outcome.latency, 0.95)),
    }


def relay_hours(
    minutes: Iterable[tuple[int, RelayFigures]], hours: Sequence[int]
) -> list[dict[str, Any]]:
    """Per hour, the largest queue depth, spool depth and relay p95 seen (None: never known)."""
    largest: dict[int, RelayFigures] = {}
    for minute, figures in minutes:
        hour = minute // 60
        largest[hour] = largest[hour] + figures if hour in largest else figures
    empty = RelayFigures(None, None, None)
    return [
        {
            "queue_depth": (figures := largest.get(hour, empty)).queue_depth,
            "spool_depth": figures.spool_depth,
            "relay_p95_ms": figures.relay_p95_ms,
        }
        for hour in hours
    ]


def objective_hours(
    minutes: Iterable[tuple[int, dict[str, Judgement]]], hours: Sequence[int]
) -> dict[str, list[dict[str, Any]]]:
    """Per objective and hour: the budget left at the hour's last judgement, the worst status."""
    by_hour: dict[str, dict[int, list[Judgement]]] = defaultdict(lambda: defaultdict(list))
    for minute, judged in minutes:
        for name, judgement in judged.items():
            by_hour[name][minute // 60].append(judgement)
    return {
        name: [_objective_figures(judged.get(hour, [])) for hour in hours]
        for name, judged in by_hour.items()
    }


def _objective_figures(judged: list[Judgement]) -> dict[str, Any]:
    if not judged:
        return {"budget_remaining_pct": None, "sli_pct": None, "status": None}
    return {
        "budget_remaining_pct": judged[-1].budget_remaining_pct,
        "sli_pct": judged[-1].sli_pct,
        "status": min((each.status for each in judged), key=STATUS_ORDER.index),
    }


def task_hours(
    minutes: Iterable[TaskMinute], hours: Sequence[int]
) -> dict[str, list[dict[str, Any]]]:
    """Per task type and hour: tasks succeeded, failed, retried, dead-lettered; p95 in s."""
    by_type: dict[str, dict[int, list[TaskMinute]]] = defaultdict(lambda: defaultdict(list))
    for row in minutes:
        by_type[row.type][int(row.at_s) // 3600].append(row)
    return {
        name: [_task_figures(rows.get(hour, [])) for hour in hours]
        for name, rows in sorted(by_type.items())
    }


def _task_figures(rows: list[TaskMinute]) -> dict[str, Any]:
    merged: dict[int, int] = {}
    for row in rows:
        for bucket, count in row.total_histogram.items():
            merged[bucket] = merged.get(bucket, 0) + count
    return {
        "succeeded": sum(row.succeeded for row in rows),
        "failed": sum(row.failed for row in rows),
        "retried": sum(row.retried for row in rows),
        "dead_lettered": sum(row.dead_lettered for row in rows),
        "p95_s": histogram.quantile(merged, 0.95),
    }


# Incidents ------------------------------------------------------------------------


def objective_incidents(
    minutes: Iterable[tuple[int, dict[str, Judgement]]], gap: int
) -> list[Incident]:
    """Intervals in which an objective was at risk, or breached."""
    statuses: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for minute, judged in minutes:
        for name, judgement in judged.items():
            statuses[name].append((minute, judgement.status))
    incidents: list[Incident] = []
    for name, points in statuses.items():
        for status in ("at_risk", "breached"):
            marked = [(minute, each == status) for minute, each in points]
            what = f"objective {status.replace('_', ' ')}"
            incidents.extend(Incident(what, name, *span) for span in _spans(marked, gap))
    return _in_order(incidents)


def route_incidents(minutes: Iterable[SeriesMinute], gap: int) -> list[Incident]:
    """Intervals in which a database route failed every probe of each minute."""
    routes: dict[str, list[tuple[int, bool]]] = defaultdict(list)
    for row in minutes:
        if row.series.startswith(ROUTE_PREFIX) and row.outcome.total:
            down = row.outcome.good == 0
            routes[row.series.removeprefix(ROUTE_PREFIX)].append((row.minute, down))
    incidents = [
        Incident("route down", route, *span)
        for route, points in routes.items()
        for span in _spans(points, gap)
    ]
    return _in_order(incidents)


def _spans(points: Iterable[tuple[int, bool]], gap: int) -> list[tuple[int, int]]:
    """[start, end) in epoch seconds of each run of marked minutes, in time order.

    A run ends at an unmarked minute, or where no minute was recorded for more than
    `gap` minutes (the agent was not running): rounds `probes.interval_s` apart may
    leave a minute or two without a row, which does not end it.
    """
    spans = []
    start: int | None = None
    end = 0
    for minute, marked in points:
        if start is not None and (not marked or minute - end > gap):
            spans.append((start * 60, (end + 1) * 60))
            start = None
        if marked:
            start = minute if start is None else start
            end = minute
    if start is not None:
        spans.append((start * 60, (end + 1) * 60))
    return spans


def _in_order(incidents: list[Incident]) -> list[Incident]:
    return sorted(
        incidents, key=lambda incident: (incident.start_s, incident.what, incident.subject)
    )


def _pct(good: int, total: int) -> float | None:
    return None if total == 0 else 100 * good / total


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000
