"""Objectives through real outages: real probes, the pooler stopped for a known number of rounds.

The rounds run back to back; each is recorded as if taken `ROUND_S` apart (the time
the tracker is given), so the windows hold known minutes and the figures are exact.
The 29 days before them are written into the history as healthy hours.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

from farm_agent.config import AgentConfig
from farm_agent.config_file import parse_config
from farm_agent.database import Route
from farm_agent.health.history import History
from farm_agent.health.history_rows import Outcome
from farm_agent.health.judging import assess
from farm_agent.health.slo import Events, ObjectiveReport, SloReport, SloStatus
from farm_agent.health.slo_tracker import SloTracker
from farm_agent.relay import idle_snapshot
from tests.agent.support import running_prober
from tests.support.queues import create_queues
from tools.services import PgBouncer, Postgres

# A whole hour (2027-01-15 08:00 UTC); the rounds are 30 s apart from it.
BASE_S = 1_800_000_000
ROUND_S = 30
HEALTHY_HOURS = 29 * 24
# Rounds of one hour at one round per 30 s.
HOURLY_ROUNDS = 120
# The probes each round runs with only the pooler configured.
PROBE_SERIES = ("postgres/database_pooler", "queue/queue", "tasks/tasks", "mqtt/mqtt_round_trip")


async def outage_config(
    make_config: Callable[..., dict[str, Any]], postgres: Postgres, tmp_path: Path
) -> AgentConfig:
    config = parse_config(
        make_config(
            direct_dsn=None,
            probes={"timeout_s": 3},
            slo={
                "objectives": [{"name": "database_availability"}, {"name": "error_rate"}],
                "history_path": str(tmp_path / "history.db"),
            },
        )
    )
    await create_queues(postgres.dsn, config.backend.queue, config.backend.dead_letter_queue)
    return config


def write_healthy_hours(path: Path) -> None:
    """The 29 days before the test's rounds: every probe answered, 120 rounds an hour."""
    history = History.open(path, 30)
    healthy = Outcome(HOURLY_ROUNDS, HOURLY_ROUNDS)
    for hours_ago in range(1, HEALTHY_HOURS + 1):
        minute = BASE_S // 60 - hours_ago * 60
        series = dict.fromkeys((*PROBE_SERIES, "route/any"), healthy)
        history.record(minute, series, None, {})
    history.close()


def objective(report: SloReport, name: str) -> ObjectiveReport:
    return next(each for each in report.objectives if each.name == name)


def burn(bad: int, total: int, target_pct: str) -> Fraction:
    return Fraction(bad, total) / ((100 - Fraction(target_pct)) / 100)


async def test_a_two_minute_pooler_outage_fires_the_fast_alert_then_the_slow_one_then_none(
    make_config: Callable[..., dict[str, Any]],
    postgres: Postgres,
    pgbouncer: PgBouncer,
    tmp_path: Path,
) -> None:
    config = await outage_config(make_config, postgres, tmp_path)
    write_healthy_hours(config.slo.history_path)
    tracker = SloTracker(config)
    reports: list[SloReport] = []
    # 20 healthy rounds (10 min), 4 with the pooler stopped (2 min), 60 healthy (30 min).
    async with running_prober(config) as prober:
        for index in range(84):
            if index == 20:
                pgbouncer.stop()
            if index == 24:
                pgbouncer.start()
                await asyncio.to_thread(pgbouncer.wait_serving)
            found = await prober.run_round(Route.POOLER)
            failed = [result.name for result in found.results if not result.ok]
            expected = ["database_pooler", "queue", "tasks"] if 20 <= index < 24 else []
            assert failed == expected, f"round {index}"
            relay = idle_snapshot(Route.POOLER, config.spool.path)
            reports.append(
                await tracker.observe(found, relay, BASE_S + index * ROUND_S, Route.POOLER)
            )
            if index == 24:  # back up, but burning
                health = assess(config, found, relay, BASE_S + index * ROUND_S, slo=reports[-1])
    await tracker.close()

    # Just after the outage (minute 11): 4 of 24 rounds failed in the last hour, 4 of 10
    # in the last 5 minutes; the 6 h window also holds 5 of the healthy hours' minutes.
    database = objective(reports[23], "database_availability")
    past_window = HEALTHY_HOURS * HOURLY_ROUNDS
    assert database.window == Events(past_window + 20, past_window + 24)
    assert database.budget_remaining == 1 - burn(4, past_window + 24, "99.9")
    assert database.burn_rates == {
        "5m": burn(4, 10, "99.9"),
        "30m": burn(4, 24, "99.9"),
        "1h": burn(4, 24, "99.9"),
        "6h": burn(4, 5 * HOURLY_ROUNDS + 24, "99.9"),
    }
    assert (database.status, database.alert) == (SloStatus.AT_RISK, "fast")
    # Every probe request counts: 3 of the 4 failed in each outage round. 12.5x over 1 h
    # is no fast burn for a 99 % objective, and 6 h of requests dilute it far below 6x.
    errors = objective(reports[23], "error_rate")
    assert errors.window == Events(4 * (past_window + 24) - 12, 4 * (past_window + 24))
    assert errors.burn_rates["1h"] == burn(12, 96, "99.0")
    assert errors.burn_rates["6h"] == burn(12, 4 * (5 * HOURLY_ROUNDS + 24), "99.0")
    assert errors.status == SloStatus.OK
    # Once the pooler is back the agent is no longer down, but degraded by the burn.
    burning = objective(reports[24], "database_availability")
    assert health.status == "degraded"
    assert health.as_json()["slo"]["objectives"][0] == burning.as_json()
    assert health.problems == (burning.problem(30),)

    # 30 healthy minutes later the 30 min window holds no failure: no alert, the budget
    # still 4 rounds short.
    database = objective(reports[83], "database_availability")
    assert database.window == Events(past_window + 80, past_window + 84)
    assert database.burn_rates["5m"] == 0
    assert database.burn_rates["30m"] == 0
    assert database.burn_rates["1h"] == burn(4, 84, "99.9")
    assert (database.status, database.alert) == (SloStatus.OK, None)
    assert objective(reports[83], "error_rate").status == SloStatus.OK
    # In between: the first failed round alone is no burn; from the second, the fast
    # alert, until the outage left the 5 min window; then the slow one, until 6 h of
    # rounds hold no more than 6x the budgeted error rate (from 667 rounds on).
    alerts = [objective(report, "database_availability").alert for report in reports]
    assert alerts[:21] == [None] * 21
    assert alerts[21:32] == ["fast"] * 11
    assert alerts[32:66] == ["slow"] * 34
    assert alerts[66:] == [None] * 18


async def test_a_restart_of_the_tracker_keeps_the_history_it_judges_on(
    make_config: Callable[..., dict[str, Any]],
    postgres: Postgres,
    tmp_path: Path,
) -> None:
    config = await outage_config(make_config, postgres, tmp_path)
    async with running_prober(config) as prober:
        for _ in range(2):
            tracker = SloTracker(config)
            for second in (0, 30, 60):
                found = await prober.run_round(Route.POOLER)
                relay = idle_snapshot(Route.POOLER, config.spool.path)
                report = await tracker.observe(found, relay, BASE_S + second, Route.POOLER)
            await tracker.close()

    # Two runs of three rounds each, recorded in the same minutes.
    assert objective(report, "database_availability").window == Events(6, 6)
    assert objective(report, "error_rate").window == Events(24, 24)
