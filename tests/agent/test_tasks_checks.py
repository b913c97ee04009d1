"""The task figures judged: a type on evidence, silent workers, depths; problems stay bounded."""

from __future__ import annotations

from farm_agent.config_file import parse_config
from farm_agent.health.judging import MAX_PROBLEMS, assess
from farm_agent.health.probes import ProbeResult, ProbeRound, TaskFigures
from farm_agent.health.task_checks import MIN_FINISHED, task_checks
from farm_agent.relay import RelaySnapshot
from farm_agent.tasks import TaskHealth, TaskTypeFigures, WorkerFigures

CONFIG = parse_config(
    {"agent_id": "farm-east", "backend": {"direct_dsn": "postgresql://db.example/postgres"}}
)
THRESHOLDS = CONFIG.probes.thresholds
RELAY = RelaySnapshot("direct", 0, 10, 10, 0, 0, 5.0, spool_full=False)


def finished(succeeded: int, dead_lettered: int, p95_s: float = 1.0) -> TaskTypeFigures:
    settled = succeeded + dead_lettered
    return TaskTypeFigures(
        succeeded=succeeded,
        failed=dead_lettered,
        retried=0,
        dead_lettered=dead_lettered,
        success_pct=100 * succeeded / settled if settled else None,
        p50_s=p95_s / 2,
        p95_s=p95_s,
        wait_p95_s=0.1,
    )


def worker(name: str, last_seen_s: float, *, stopped: bool = False) -> WorkerFigures:
    alive = not stopped and last_seen_s < 3 * 10
    return WorkerFigures(name, last_seen_s, alive, 0, 4, stopped=stopped, heartbeat_s=10)


def section(
    by_type: dict[str, TaskTypeFigures] | None = None,
    workers: tuple[WorkerFigures, ...] = (),
    depth: dict[str, int | None] | None = None,
    dlq_depth: int | None = 0,
) -> TaskHealth:
    return TaskHealth(
        depth=depth or {"high": 0, "normal": 0, "low": 0},
        dlq_depth=dlq_depth,
        throughput_per_s=0.1,
        by_type=by_type or {},
        workers=workers,
    )


def verdicts(found: TaskHealth) -> dict[str, bool | None]:
    return {check.name: check.ok for check in task_checks(found, THRESHOLDS)}


def test_a_type_below_target_is_judged_from_twenty_finished_tasks_on() -> None:
    tiny = section({"report": finished(MIN_FINISHED - 2, 1)})
    enough = section({"report": finished(MIN_FINISHED - 1, 1)})

    assert verdicts(tiny)["task_success report"] is None
    [check] = [c for c in task_checks(tiny, THRESHOLDS) if c.name == "task_success report"]
    assert "too few to judge" in check.detail
    assert verdicts(enough)["task_success report"] is False
    [failed] = [c for c in task_checks(enough, THRESHOLDS) if c.ok is False]
    assert failed.detail == "task report success 95 % < 99.5 % (19 of 20 in the last hour)"


def test_a_slow_type_is_named_whatever_its_count_and_one_at_its_target_is_not() -> None:
    found = section({"report": finished(1, 0, p95_s=31), "water": finished(1, 0, p95_s=30)})

    checks = task_checks(found, THRESHOLDS)

    assert [c.detail for c in checks if c.ok is False] == ["task report p95 31 s > 30 s"]
    assert verdicts(found)["task_p95 water"] is True


def test_only_a_worker_gone_without_a_goodbye_is_silent() -> None:
    found = section(
        workers=(
            worker("farm-east:10", 2.0),
            worker("farm-east:11", 45.0),
            worker("farm-west:12", 45.0, stopped=True),
        )
    )

    [failed] = [c for c in task_checks(found, THRESHOLDS) if c.ok is False]

    assert failed.name == "task_workers"
    assert (
        failed.detail
        == "worker farm-east:11 silent for 45 s (heartbeat every 10 s); 1 worker alive"
    )


def test_many_silent_workers_are_one_sentence_naming_three() -> None:
    found = section(workers=tuple(worker(f"farm-east:{n}", 60.0) for n in range(7)))

    [failed] = [c for c in task_checks(found, THRESHOLDS) if c.ok is False]

    assert failed.detail == (
        "7 workers silent for 3 heartbeats or more: farm-east:0, farm-east:1, farm-east:2 "
        "and 4 more; 0 workers alive"
    )


def test_depth_of_all_priorities_together_and_dead_letters_are_judged() -> None:
    deep = section(depth={"high": 40, "normal": 40, "low": 21}, dlq_depth=1)
    at_target = section(depth={"high": 100, "normal": 0, "low": 0})

    problems = [c.detail for c in task_checks(deep, THRESHOLDS) if c.ok is False]

    assert problems == [
        "task queue depth 101 > 100 (high 40, normal 40, low 21)",
        "task dead-letter queue holds 1 > 0",
    ]
    assert verdicts(at_target)["task_depth"] is True


def test_nothing_to_judge_is_neither_ok_nor_a_problem() -> None:
    found = section(depth={"high": None, "normal": None, "low": None}, dlq_depth=None)

    assert verdicts(found) == {
        "task_depth": None,
        "task_dead_letters": None,
        "task_workers": None,
    }


def test_problems_stay_bounded_with_many_failing_types_and_silent_workers() -> None:
    failing = {f"type{n:02}": finished(50, 10, p95_s=90) for n in range(40)}
    silent = tuple(worker(f"farm-east:{n}", 600.0) for n in range(50))
    figures = TaskFigures(
        0, 0, None, None, None, section=section(failing, silent, dlq_depth=400), from_workers=True
    )
    found = ProbeRound(
        databases=(ProbeResult("database_direct", "postgres", True, 2.0, "SELECT 1"),),
        queue=None,
        tasks=figures,
        results=(ProbeResult("mqtt_round_trip", "mqtt", True, 1.0, "own probe topic"),),
        broker_connected=True,
    )

    health = assess(CONFIG, found, RELAY, 1795665600.0)

    assert len(health.problems) == MAX_PROBLEMS
    assert health.problems[-1] == f"and {2 + 80 - (MAX_PROBLEMS - 1)} more"
    assert len(health.task_checks) == 3 + 2 * 40
    assert health.as_json()["tasks"]["dlq_depth"] == 400
