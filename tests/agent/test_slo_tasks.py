"""The task objectives, from the workers' figures in a real database of their own."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from fractions import Fraction
from typing import Any

from farm_agent.config import AgentConfig
from farm_agent.config_file import parse_config
from farm_agent.database import Route
from farm_agent.health.slo import Events, SloStatus, judge
from farm_agent.health.slo_tasks import TaskEvents
from farm_agent.health.slo_tracker import SloTracker
from farm_agent.relay import idle_snapshot
from tests.agent.support import add_task_minute, healthy_round, set_up_task_figures
from tests.support.agent import with_secret
from tests.support.waiting import wait_until


def tasks_config(make_config: Callable[..., dict[str, Any]], dsn: str) -> AgentConfig:
    return parse_config(
        make_config(
            pooler_dsn=None,
            direct_dsn=with_secret(dsn),
            probes={"thresholds": {"processing_s": 30}},
            slo={"objectives": None},  # the spec's five, the task objectives among them
        )
    )


async def test_task_objectives_count_the_workers_figures_over_the_window_exactly(
    make_config: Callable[..., dict[str, Any]], figures_database: str
) -> None:
    config = tasks_config(make_config, figures_database)
    reader = TaskEvents(config)
    assert await reader.read() is None, "no worker ever ran here: unknown"
    await set_up_task_figures(figures_database)
    # Now: 20 of 60 tasks took 60 s, over the 30 s limit; one more was dead-lettered.
    await add_task_minute(figures_database, 0, "report", dead_lettered=1, s1=30, s60=20)
    await add_task_minute(figures_database, 0, "notify", s0_5=10)
    await add_task_minute(figures_database, 120, "report", s2=100)
    await add_task_minute(figures_database, 29 * 24 * 60, "report", dead_lettered=2, s1=5000)
    await add_task_minute(figures_database, 31 * 24 * 60, "report", dead_lettered=50)  # outside

    events = await reader.read()

    assert events is not None
    success, latency = events["task_success"], events["task_latency"]
    assert success.window == Events(5160, 5163)
    assert success.windows["5m"] == Events(60, 61)
    assert success.windows["6h"] == Events(160, 161)
    assert latency.window == Events(5140, 5160)
    assert latency.windows["1h"] == Events(40, 60)
    objectives = {objective.name: objective for objective in config.slo.objectives}
    judged = judge(objectives["task_latency"], latency)
    assert judged.budget_remaining == 1 - Fraction(20, 5160) / Fraction(1, 100)
    assert (judged.status, judged.alert) == (SloStatus.AT_RISK, "fast")
    assert judge(objectives["task_success"], success).status == SloStatus.OK

    # The next round reads what workers added since; the older hours are kept, not re-read.
    await add_task_minute(figures_database, 0, "alarm", s0_5=5)
    again = await reader.read()

    assert again is not None
    assert again["task_success"].window == Events(5165, 5168)
    assert again["task_latency"].windows["5m"] == Events(45, 65)


async def test_the_running_tracker_judges_the_task_objectives_on_what_workers_add(
    make_config: Callable[..., dict[str, Any]], figures_database: str
) -> None:
    config = tasks_config(make_config, figures_database)
    await set_up_task_figures(figures_database)
    await add_task_minute(figures_database, 0, "report", dead_lettered=1, s1=300)
    tracker = SloTracker(config)
    relay = idle_snapshot(Route.DIRECT, config.spool.path)

    async def task_success() -> Events:
        report = await tracker.observe(healthy_round(), relay, time.time(), Route.DIRECT)
        return next(each for each in report.objectives if each.name == "task_success").window

    first = await task_success()
    await add_task_minute(figures_database, 0, "notify", s1=10)
    # Read beside the rounds: a later round shows what the workers added.
    later = await wait_until(
        lambda: _when_counted(task_success(), 311), "the new tasks counted", 10
    )
    await tracker.close()

    assert first == Events(300, 301)
    assert later == Events(310, 311)


async def _when_counted(window: Awaitable[Events], total: int) -> Events | None:
    found = await window
    return found if found.total == total else None
