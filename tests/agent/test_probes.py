"""Each probe on the real thing: every failure is found, named, and judged against its threshold."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from farm_agent.config import AgentConfig
from farm_agent.config_file import parse_config
from tests.agent.support import Endpoint, judge, result_named, running_prober
from tests.support.queues import archive_finished, create_queues, send
from tools.services import PgBouncer, Postgres

ConfigMaker = Callable[..., dict[str, Any]]


async def configured(make_config: ConfigMaker, postgres: Postgres, **sections: Any) -> AgentConfig:
    """This test's config, with its queues created as the agent would at start."""
    config = parse_config(make_config(**sections))
    await create_queues(postgres.dsn, config.backend.queue, config.backend.dead_letter_queue)
    return config


async def test_healthy_backend_is_ok_with_both_routes_timed_and_no_problems(
    make_config: ConfigMaker, postgres: Postgres
) -> None:
    config = await configured(make_config, postgres)
    async with running_prober(config) as prober:
        found = await prober.run_round()

    health = judge(config, found)

    assert health.problems == ()
    assert health.status == "ok"
    assert health.backend.route == "pooler"
    assert health.backend.pooler_latency_ms is not None
    assert health.backend.direct_latency_ms is not None
    assert result_named(found, "database_pooler").detail.startswith("SELECT 1 in")
    assert health.queue.depth == 0
    assert health.queue.dlq_depth == 0
    assert result_named(found, "mqtt_round_trip").ok


async def test_stopped_pooler_is_named_and_the_direct_route_still_answers(
    make_config: ConfigMaker, postgres: Postgres, pgbouncer: PgBouncer
) -> None:
    config = await configured(make_config, postgres)
    pgbouncer.stop()
    try:
        async with running_prober(config) as prober:
            found = await prober.run_round()
    finally:
        pgbouncer.start()

    health = judge(config, found)

    assert health.status == "degraded"
    assert "pooler down: ConnectionRefusedError" in health.problems
    assert health.backend.route == "direct"
    assert health.backend.pooler_latency_ms is None
    assert health.backend.direct_latency_ms is not None
    assert health.queue.depth == 0, "queue figures come over the direct route"


async def test_no_route_at_all_is_down_with_every_database_figure_unknown(
    make_config: ConfigMaker, postgres: Postgres
) -> None:
    closed = "postgresql://postgres@127.0.0.1:1/farm"
    config = parse_config(make_config(pooler_dsn=closed, direct_dsn=closed.replace(":1/", ":2/")))
    async with running_prober(config) as prober:
        found = await prober.run_round()

    health = judge(config, found)

    assert health.status == "down"
    assert health.problems == ("no route to the database: pooler and direct both fail",)
    assert health.backend.route == "none"
    assert health.queue.depth is None
    assert health.queue.task_success_pct is None


async def test_query_slower_than_the_threshold_is_named_with_figure_and_threshold(
    make_config: ConfigMaker, postgres: Postgres
) -> None:
    config = await configured(make_config, postgres, probes={"thresholds": {"query_ms": 0.001}})
    async with running_prober(config) as prober:
        found = await prober.run_round()

    health = judge(config, found)

    assert health.status == "degraded"
    slow = [problem for problem in health.problems if " query " in problem]
    assert [problem.split()[0] for problem in slow] == ["pooler", "direct"]
    assert all(problem.endswith("ms > 0.001 ms") for problem in slow)


async def test_queue_deeper_than_the_threshold_is_named(
    make_config: ConfigMaker, postgres: Postgres
) -> None:
    config = await configured(make_config, postgres, probes={"thresholds": {"queue_depth": 2}})
    await send(postgres.dsn, config.backend.queue, *({"n": n} for n in range(3)))
    async with running_prober(config) as prober:
        found = await prober.run_round()

    health = judge(config, found)

    assert health.queue.depth == 3
    assert health.queue.oldest_age_s is not None
    assert health.problems == ("queue depth 3 > 2",)
    assert health.status == "degraded"


async def test_a_single_dead_letter_is_named_at_the_default_threshold(
    make_config: ConfigMaker, postgres: Postgres
) -> None:
    config = await configured(make_config, postgres)
    await send(postgres.dsn, config.backend.dead_letter_queue, {"error": "not JSON"})
    async with running_prober(config) as prober:
        found = await prober.run_round()

    health = judge(config, found)

    assert health.queue.dlq_depth == 1
    assert "dead-letter queue holds 1 > 0" in health.problems
    # A dead letter of the last hour is also a failed task: 0 archived, 1 failed.
    assert health.queue.task_success_pct == 0
    assert "task success 0 % < 99.5 %" in health.problems


async def test_task_figures_come_from_the_last_hour_of_the_archive(
    make_config: ConfigMaker, postgres: Postgres
) -> None:
    config = await configured(make_config, postgres)
    queue = config.backend.queue
    await archive_finished(postgres.dsn, queue, [float(n) for n in range(1, 21)])
    await archive_finished(postgres.dsn, queue, [500.0] * 50, hours_ago=2)
    async with running_prober(config) as prober:
        found = await prober.run_round()

    health = judge(config, found)

    assert found.tasks is not None
    assert found.tasks.archived == 20
    assert health.queue.processing_p50_s is not None
    assert round(health.queue.processing_p50_s, 1) == 10.5
    assert health.queue.processing_p95_s is not None
    assert round(health.queue.processing_p95_s, 2) == 19.05
    assert health.queue.task_success_pct == 100
    assert health.problems == ()


async def test_slow_processing_and_low_task_success_are_named(
    make_config: ConfigMaker, postgres: Postgres
) -> None:
    config = await configured(make_config, postgres)
    await archive_finished(postgres.dsn, config.backend.queue, [45.0] * 38)
    await send(postgres.dsn, config.backend.dead_letter_queue, {"error": "consumer gave up"})
    # A dead letter someone already archived still failed within the hour.
    await archive_finished(postgres.dsn, config.backend.dead_letter_queue, [1.0])
    async with running_prober(config) as prober:
        found = await prober.run_round()

    health = judge(config, found)

    assert "task processing p95 45 s > 30 s" in health.problems
    assert "task success 95 % < 99.5 %" in health.problems


async def test_nothing_finished_in_the_last_hour_leaves_task_figures_unknown(
    make_config: ConfigMaker, postgres: Postgres
) -> None:
    config = await configured(make_config, postgres)
    await archive_finished(postgres.dsn, config.backend.queue, [1.0, 2.0], hours_ago=3)
    async with running_prober(config) as prober:
        found = await prober.run_round()

    health = judge(config, found)

    assert health.queue.processing_p95_s is None
    assert health.queue.processing_p50_s is None
    assert health.queue.task_success_pct is None
    assert health.problems == ()
    assert (
        result_named(found, "tasks").detail == "nothing finished or dead-lettered in the last hour"
    )


async def test_missing_queue_is_named_not_counted_as_empty(make_config: ConfigMaker) -> None:
    config = parse_config(make_config())  # queues never created
    async with running_prober(config) as prober:
        found = await prober.run_round()

    health = judge(config, found)

    assert health.queue.depth is None
    assert health.status == "degraded"
    assert any(p.startswith("queue figures unknown: queue ") for p in health.problems)


async def test_a_probe_stuck_past_its_timeout_fails_alone_without_delaying_the_others(
    make_config: ConfigMaker, postgres: Postgres, endpoint: Endpoint
) -> None:
    http = [
        {"name": "stuck", "url": endpoint.url("/slow"), "timeout_s": 0.5},
        {"name": "fine", "url": endpoint.url("/plain")},
    ]
    config = await configured(make_config, postgres, probes={"http": http})
    async with running_prober(config) as prober:
        started = time.monotonic()
        found = await prober.run_round()
        took = time.monotonic() - started

    stuck = result_named(found, "stuck")
    assert not stuck.ok
    assert stuck.detail == "no answer within 0.5 s"
    assert result_named(found, "fine").ok
    assert result_named(found, "database_pooler").ok
    assert took < 2.5
    assert "stuck: no answer within 0.5 s" in judge(config, found).problems
