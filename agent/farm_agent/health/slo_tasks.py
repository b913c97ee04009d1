"""The task objectives' events, from the workers' figures in the database (not the local history).

- `task_success`: every settled task is an event, good when it succeeded rather than
  being dead-lettered (the `success_pct` of the task figures);
- `task_latency`: every succeeded task is an event, good when it was done (archived)
  within `probes.thresholds.processing_s` of being submitted, as its latency
  histogram tells (within 4.9 %); a failed task counts against `task_success` only.

Windows as in `farm_agent.health.slo`, by the database's clock. Each round reads the
recent minutes (the last RECENT_HOURS whole hours and the current one); the older hours
of the window are read once and kept, as they no longer change, so a 30-day window
costs the database one small query a round and one of a new hour each hour.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterable

import asyncpg

from farm_agent import database
from farm_agent.config import AgentConfig
from farm_agent.database import Route
from farm_agent.failures import DATABASE_ERRORS
from farm_agent.health.slo import WINDOW_MINUTES, Events, ObjectiveEvents
from farm_agent.task_outcomes import TaskOutcomes, database_now_s, outcomes_by_period

RECENT_HOURS = 6
TASK_OBJECTIVES = ("task_success", "task_latency")


class TaskEvents:
    """Reads the task objectives' events each round, keeping the hours that no longer change."""

    def __init__(self, config: AgentConfig) -> None:
        self._backend = config.backend
        self._timeout_s = config.probes.timeout_s
        self._limit_s = config.probes.thresholds.processing_s
        self._window_hours = config.slo.window_days * 24
        self._hours: dict[int, TaskOutcomes] = {}

    async def read(self, active_route: Route | None = None) -> dict[str, ObjectiveEvents] | None:
        """Each task objective's events now; None when they cannot be known.

        Unknown when the database does not answer within `probes.timeout_s`, or when
        no worker ever ran against it (its figures table does not exist).
        """
        try:
            return await asyncio.wait_for(self._read(active_route), self._timeout_s)
        except (TimeoutError, asyncpg.UndefinedTableError, *DATABASE_ERRORS):
            return None

    async def _read(self, active_route: Route | None) -> dict[str, ObjectiveEvents]:
        _, connection = await database.connect_any(
            self._backend, self._timeout_s, active_route, "farm-agent-slo"
        )
        try:
            minute = math.floor(await database_now_s(connection) / 60)
            first_recent_hour = minute // 60 - RECENT_HOURS
            recent = await outcomes_by_period(
                connection, first_recent_hour * 3600, (minute + 1) * 60, 60, self._limit_s
            )
            await self._read_old_hours(connection, minute // 60)
        finally:
            await database.close_quietly(connection)
        return self._events(minute, recent)

    async def _read_old_hours(self, connection: asyncpg.Connection, hour: int) -> None:
        """Read the window's hours before the recent ones that are not kept yet."""
        first, end = hour - self._window_hours + 1, hour - RECENT_HOURS
        for kept in [kept for kept in self._hours if kept < first]:
            del self._hours[kept]
        missing = [each for each in range(first, end) if each not in self._hours]
        if not missing:
            return
        found = await outcomes_by_period(
            connection, missing[0] * 3600, end * 3600, 3600, self._limit_s
        )
        for each in range(missing[0], end):
            self._hours[each] = found.get(each, TaskOutcomes())

    def _events(self, minute: int, recent: dict[int, TaskOutcomes]) -> dict[str, ObjectiveEvents]:
        windows = {
            name: _sum(
                outcomes for at, outcomes in recent.items() if minute - length < at <= minute
            )
            for name, length in WINDOW_MINUTES.items()
        }
        window = _sum(recent.values()) + _sum(self._hours.values())
        return {
            "task_success": ObjectiveEvents(
                {name: _settled(outcomes) for name, outcomes in windows.items()}, _settled(window)
            ),
            "task_latency": ObjectiveEvents(
                {name: _in_time(outcomes) for name, outcomes in windows.items()}, _in_time(window)
            ),
        }


def _sum(outcomes: Iterable[TaskOutcomes]) -> TaskOutcomes:
    total = TaskOutcomes()
    for each in outcomes:
        total += each
    return total


def _settled(outcomes: TaskOutcomes) -> Events:
    return Events(outcomes.succeeded, outcomes.succeeded + outcomes.dead_lettered)


def _in_time(outcomes: TaskOutcomes) -> Events:
    return Events(outcomes.within, outcomes.succeeded)
