"""The objectives in the running agent: each probe round judged, then kept in the history.

What each objective counts (`slo.objectives`, DESIGN.md "SLOs"):

- `database_availability`: one event per probe round, good when at least one
  configured database route answered its `SELECT 1` (the relay could work);
- `api_availability`: one event per HTTP probe (`probes.http`) and round, good when
  it passed; unknown without HTTP probes;
- `error_rate`: every probe request of a round (each database route, the queue and
  task figures, each HTTP probe, the MQTT round trip), good when it had no error;
- `task_success`, `task_latency`: from the workers' figures (`slo_tasks`).

A round is judged on the history up to it plus the round itself, then written in one
transaction. The history failing (disk full, unusable file) never stops the agent:
it is logged once, reported as a problem, and the objectives it feeds are unknown
until it works again; the relay never waits for it (it runs on a thread of its own).
The task figures are read beside the rounds, so a database that does not answer
never holds up a round's health either.
`check` reads the history another agent keeps, read-only, and adds nothing to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import sqlite3
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor

from farm_agent.config import AgentConfig
from farm_agent.database import Route
from farm_agent.health.history import History, HistoryError
from farm_agent.health.history_rows import Judgement, Outcome, RelayFigures
from farm_agent.health.probes import ProbeKind, ProbeRound
from farm_agent.health.slo import (
    NO_EVENTS,
    ObjectiveEvents,
    ObjectiveReport,
    SloReport,
    all_windows,
    judge,
    unknown_report,
)
from farm_agent.health.slo_metrics import SloMetrics
from farm_agent.health.slo_tasks import TASK_OBJECTIVES, TaskEvents
from farm_agent.histogram import bucket_of
from farm_agent.relay import RelaySnapshot

_LOGGER = logging.getLogger(__name__)

# The series of rounds in which at least one database route answered.
ROUTE_SERIES = "route/any"


def series_name(kind: str, name: str) -> str:
    """A probe's series in the history: `<kind>/<name>` (HTTP probe names are the user's)."""
    return f"{kind}/{name}"


def round_outcomes(found: ProbeRound) -> dict[str, Outcome]:
    """What one probe round adds to each series."""
    outcomes = {
        series_name(result.kind, result.name): Outcome(
            int(result.ok),
            1,
            {} if result.latency_ms is None else {bucket_of(result.latency_ms / 1000): 1},
        )
        for result in found.results
    }
    outcomes[ROUTE_SERIES] = Outcome(int(any(result.ok for result in found.databases)), 1)
    return outcomes


def objective_series(name: str, series: str) -> bool:
    """Whether a history series counts toward an objective measured locally."""
    kind = series.split("/", 1)[0]
    if name == "database_availability":
        return series == ROUTE_SERIES
    if name == "api_availability":
        return kind == ProbeKind.HTTP
    return name == "error_rate" and kind in set(ProbeKind)


def local_events(name: str, by_series: Mapping[str, ObjectiveEvents]) -> ObjectiveEvents:
    """An objective's events, summed over the history series it counts."""
    total = NO_EVENTS
    for series, events in by_series.items():
        if objective_series(name, series):
            total += events
    return total


class SloTracker:
    """Judges the objectives after each round and keeps the round in the history."""

    def __init__(self, config: AgentConfig, metrics: SloMetrics | None = None) -> None:
        self._config = config
        self._metrics = metrics
        names = {objective.name for objective in config.slo.objectives}
        self._tasks = TaskEvents(config) if names & set(TASK_OBJECTIVES) else None
        # SQLite on a thread of its own: a slow or full disk never holds up the event loop.
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="farm-agent-history")
        self._history: History | None = None
        self._trouble: str | None = None
        self._task_read: asyncio.Task[dict[str, ObjectiveEvents] | None] | None = None
        self._task_events: Mapping[str, ObjectiveEvents] | None = None

    async def observe(
        self, found: ProbeRound, relay: RelaySnapshot, now: float, active_route: Route | None
    ) -> SloReport:
        """Judge the objectives with this round, and record it; never raises."""
        try:
            tasks = await self._latest_task_events(active_route)
            figures = RelayFigures(
                found.queue.depth if found.queue is not None else None,
                relay.spool_depth,
                relay.e2e_latency_p95_ms,
            )
            loop = asyncio.get_running_loop()
            report = await loop.run_in_executor(
                self._executor, self._judge_and_record, found, figures, tasks, now
            )
        except Exception:  # a bug here must not stop the health reports
            _LOGGER.exception("judging the SLOs failed")
            report = unknown_report(self._config.slo, ("SLOs unknown: judging them failed",))
        if self._metrics is not None:
            self._metrics.record(report)
        return report

    async def _latest_task_events(
        self, active_route: Route | None
    ) -> Mapping[str, ObjectiveEvents] | None:
        """The task objectives' events, read alongside the rounds rather than within them.

        A read can take `probes.timeout_s` (a database that does not answer): it never
        holds up a round's health. Each round takes the last read that finished and
        starts the next one; only the first round waits for its read.
        """
        if self._tasks is None:
            return None
        reading = self._task_read
        if reading is None:
            self._task_events = await self._tasks.read(active_route)
        elif reading.done():
            self._task_events = reading.result()
        else:
            return self._task_events
        self._task_read = asyncio.create_task(self._tasks.read(active_route))
        return self._task_events

    async def close(self) -> None:
        if self._task_read is not None:
            self._task_read.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task_read
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._close_history)
        self._executor.shutdown(wait=False)

    # The history's thread ----------------------------------------------------------

    def _judge_and_record(
        self,
        found: ProbeRound,
        relay: RelayFigures,
        tasks: Mapping[str, ObjectiveEvents] | None,
        now: float,
    ) -> SloReport:
        outcomes = round_outcomes(found)
        history = self._open_history()
        minute = 0
        past: dict[str, ObjectiveEvents] | None = None
        if history is not None:
            try:
                minute = history.advance(now)
                past = history.window_events(minute, self._config.slo.window_days)
            except sqlite3.Error as err:
                self._troubled(f"SLO history cannot be read ({err})")
        local = None
        if past is not None:
            local = dict(past)
            for series, outcome in outcomes.items():
                local[series] = local.get(series, NO_EVENTS) + all_windows(outcome.events)
        report = objectives_report(self._config, local, tasks)
        if history is not None and past is not None:
            judged = {each.name: _judgement(each) for each in report.objectives}
            try:
                history.record(minute, outcomes, relay, judged)
            except sqlite3.Error as err:
                self._troubled(f"SLO history not written ({err})")
            else:
                self._untroubled()
        notes = (self._trouble,) if self._trouble is not None else ()
        return dataclasses.replace(report, notes=notes)

    def _open_history(self) -> History | None:
        """The history, opened at the first round (and retried each round until it opens)."""
        if self._history is None:
            try:
                self._history = History.open(
                    self._config.slo.history_path, self._config.slo.window_days
                )
            except HistoryError as err:
                self._troubled(str(err))
        return self._history

    def _troubled(self, trouble: str) -> None:
        if self._trouble is None:
            _LOGGER.warning("%s; the relay carries on, the SLOs it feeds are unknown", trouble)
        self._trouble = trouble

    def _untroubled(self) -> None:
        if self._trouble is not None:
            _LOGGER.info("SLO history written again")
        self._trouble = None

    def _close_history(self) -> None:
        if self._history is not None:
            self._history.close()
            self._history = None


def objectives_report(
    config: AgentConfig,
    local: Mapping[str, ObjectiveEvents] | None,
    tasks: Mapping[str, ObjectiveEvents] | None,
    notes: tuple[str, ...] = (),
) -> SloReport:
    """Every configured objective judged on its events; unknown where they are not known."""
    judged: list[ObjectiveReport] = []
    for objective in config.slo.objectives:
        if objective.name in TASK_OBJECTIVES:
            events = tasks.get(objective.name, NO_EVENTS) if tasks is not None else NO_EVENTS
        else:
            events = local_events(objective.name, local) if local is not None else NO_EVENTS
        judged.append(judge(objective, events))
    return SloReport(config.slo.window_days, tuple(judged), notes)


async def read_objectives(config: AgentConfig, now: float, active_route: Route | None) -> SloReport:
    """The objectives as the running agent's history and the task figures show them (`check`).

    Without a history file the objectives it feeds are unknown, which is no problem.
    """
    tasks = None
    if {objective.name for objective in config.slo.objectives} & set(TASK_OBJECTIVES):
        tasks = await TaskEvents(config).read(active_route)
    try:
        local = await asyncio.to_thread(_read_history, config, now)
    except (HistoryError, sqlite3.Error) as err:
        return objectives_report(config, None, tasks, (f"SLO history cannot be read ({err})",))
    return objectives_report(config, local, tasks)


def _read_history(config: AgentConfig, now: float) -> dict[str, ObjectiveEvents] | None:
    history = History.open_read_only(config.slo.history_path)
    if history is None:
        return None
    try:
        return history.window_events(history.minute_at(now), config.slo.window_days)
    finally:
        history.close()


def _judgement(report: ObjectiveReport) -> Judgement:
    figures = report.as_json()
    return Judgement(report.status, figures["sli_pct"], figures["budget_remaining_pct"])
