"""Task outcomes over time, read from the workers' figures (`farm_resilience.task_minutes`).

Workers count every settled task there, per minute and type (farm_agent.tasks.sql);
the task objectives and the weekly review read them back through this module, which
knows the table but nothing of workers. Times are seconds since the Unix epoch by the
database's clock, periods whole minutes or hours of it. A task succeeded within a
limit when its enqueue-to-done latency's histogram bucket value is at most the limit
(`farm_agent.histogram.highest_bucket_within`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import asyncpg

from farm_agent import histogram

NOW_S = "SELECT extract(epoch FROM now())::float8"
# Per period: succeeded, dead-lettered, and succeeded within the limit ($4: the highest
# bucket within it), summed over every task type.
BY_PERIOD = """
SELECT floor(extract(epoch FROM minute) / $3)::bigint AS period,
       sum(succeeded)::bigint AS succeeded,
       sum(dead_lettered)::bigint AS dead_lettered,
       sum((SELECT coalesce(sum(value::bigint), 0) FROM jsonb_each_text(total_histogram)
            WHERE key::int <= $4))::bigint AS within
FROM farm_resilience.task_minutes
WHERE minute >= to_timestamp($1) AND minute < to_timestamp($2)
GROUP BY 1
"""
MINUTES = """
SELECT extract(epoch FROM minute)::float8 AS at, type, succeeded, failed, retried, dead_lettered,
       total_histogram::text AS total_histogram
FROM farm_resilience.task_minutes
WHERE minute >= to_timestamp($1) AND minute < to_timestamp($2)
ORDER BY minute, type
"""


@dataclass(frozen=True, slots=True)
class TaskOutcomes:
    """Tasks settled in some period: succeeded, dead-lettered, and succeeded within the limit."""

    succeeded: int = 0
    dead_lettered: int = 0
    within: int = 0

    def __add__(self, other: TaskOutcomes) -> TaskOutcomes:
        return TaskOutcomes(
            self.succeeded + other.succeeded,
            self.dead_lettered + other.dead_lettered,
            self.within + other.within,
        )


@dataclass(frozen=True, slots=True)
class TaskMinute:
    """One row of the figures: a minute of one task type."""

    at_s: float
    type: str
    succeeded: int
    failed: int
    retried: int
    dead_lettered: int
    # farm_agent.histogram buckets of enqueue-to-done seconds -> tasks.
    total_histogram: dict[int, int]


async def database_now_s(connection: asyncpg.Connection) -> float:
    """The database's clock: the figures' minutes are by it."""
    return float(await connection.fetchval(NOW_S))


async def outcomes_by_period(
    connection: asyncpg.Connection, start_s: float, end_s: float, period_s: int, limit_s: float
) -> dict[int, TaskOutcomes]:
    """Per period (epoch seconds // period_s) in [start_s, end_s): the tasks' outcomes.

    Raises asyncpg.UndefinedTableError when no worker ever ran against this database.
    """
    rows = await connection.fetch(
        BY_PERIOD, start_s, end_s, period_s, histogram.highest_bucket_within(limit_s)
    )
    return {
        int(row["period"]): TaskOutcomes(
            int(row["succeeded"]), int(row["dead_lettered"]), int(row["within"])
        )
        for row in rows
    }


async def task_minutes(
    connection: asyncpg.Connection, start_s: float, end_s: float
) -> list[TaskMinute]:
    """Every minute row in [start_s, end_s), in time order; raises UndefinedTableError likewise."""
    rows = await connection.fetch(MINUTES, start_s, end_s)
    return [
        TaskMinute(
            at_s=float(row["at"]),
            type=row["type"],
            succeeded=int(row["succeeded"]),
            failed=int(row["failed"]),
            retried=int(row["retried"]),
            dead_lettered=int(row["dead_lettered"]),
            total_histogram=histogram.merge([json.loads(row["total_histogram"])]),
        )
        for row in rows
    ]
