"""Judging a probe round: status, problems in the contract's own words, unknown figures as null."""

from __future__ import annotations

import json
from typing import Any

import pytest

from farm_agent.config import AgentConfig
from farm_agent.config_file import parse_config
from farm_agent.health.judging import Health, assess, bound_problems
from farm_agent.health.probes import ProbeResult, ProbeRound, QueueFigures, TaskFigures
from farm_agent.relay import RelaySnapshot
from tests.contract import assert_health_contract, load_vectors

NOW = 1795665600.123  # 2026-11-26T04:00:00.123Z
SECRET = "Hunter2-pooler"


def config(**probes: Any) -> AgentConfig:
    return parse_config(
        {
            "agent_id": "farm-east",
            "backend": {
                "pooler_dsn": f"postgresql://postgres.ref:{SECRET}@pooler.example:6543/postgres",
                "direct_dsn": f"postgresql://postgres:{SECRET}@db.example:5432/postgres",
            },
            "probes": probes,
        }
    )


def database(route: str, latency_ms: float | None, detail: str = "SELECT 1") -> ProbeResult:
    return ProbeResult(f"database_{route}", "postgres", latency_ms is not None, latency_ms, detail)


REFUSED = "ConnectionRefusedError: [Errno 111] Connect call failed"
MQTT_OK = ProbeResult("mqtt_round_trip", "mqtt", True, 1.2, "own probe topic")
QUEUE_OK = ProbeResult("queue", "queue", True, 2.0, "depth 12, dead letters 0")
TASKS_OK = ProbeResult("tasks", "tasks", True, 3.0, "…")
MQTT_UNREACHABLE = ProbeResult(
    "mqtt_round_trip", "mqtt", False, None, "broker 127.0.0.1:1883 not connected"
)


def probe_round(
    pooler: float | None = 3.1,
    direct: float | None = 2.4,
    queue: QueueFigures | None = QueueFigures(12, 3.0, 0, None),  # noqa: B008
    tasks: TaskFigures | None = TaskFigures(500, 1, 1.0, 4.2, 99.8),  # noqa: B008
    extra: tuple[ProbeResult, ...] = (),
    broker_connected: bool = True,
) -> ProbeRound:
    databases = (
        database("pooler", pooler, "SELECT 1" if pooler is not None else REFUSED),
        database("direct", direct, "SELECT 1" if direct is not None else REFUSED),
    )
    queue_result = QUEUE_OK if queue else ProbeResult("queue", "queue", False, None, REFUSED)
    tasks_result = TASKS_OK if tasks else ProbeResult("tasks", "tasks", False, None, REFUSED)
    mqtt = MQTT_OK if broker_connected else MQTT_UNREACHABLE
    return ProbeRound(
        databases=databases,
        queue=queue,
        tasks=tasks,
        results=(*databases, queue_result, tasks_result, *extra, mqtt),
        broker_connected=broker_connected,
    )


RELAY = RelaySnapshot("pooler", 0, 1520, 1508, 0, 12, 41.5, spool_full=False)


def judged(found: ProbeRound, relay: RelaySnapshot = RELAY, **probes: Any) -> Health:
    health = assess(config(**probes), found, relay, NOW)
    assert_health_contract(health.as_json())
    return health


def test_a_healthy_round_is_ok_and_matches_the_healthy_contract_vector() -> None:
    health = judged(probe_round())

    vector = load_vectors()["accepted"][0]["health"]
    published = health.as_json()
    assert published["status"] == "ok"
    assert published["ts"] == "2026-11-26T04:00:00.123Z"
    assert published["problems"] == []
    for section in ("backend", "relay"):
        assert published[section] == vector[section]
    assert published["queue"] == {**vector["queue"], "processing_p50_s": 1.0}


def test_degraded_problems_read_like_the_contract_vector() -> None:
    relay = RelaySnapshot("direct", 2, 9000, 8990, 3, 7, 180.0, spool_full=False)
    found = probe_round(
        pooler=None,
        direct=2.9,
        queue=QueueFigures(140, 95.0, 3, 60.0),
        tasks=TaskFigures(460, 10, 2.0, 12.0, 97.9),
    )

    health = judged(found, relay)

    vector = load_vectors()["accepted"][1]["health"]
    assert health.status == "degraded"
    assert list(health.problems) == vector["problems"]
    assert health.as_json()["backend"] == vector["backend"]


def test_no_route_is_down_with_one_sentence_and_every_database_figure_null() -> None:
    relay = RelaySnapshot("none", 3, 9500, 8990, 3, 510, None, spool_full=False)

    health = judged(probe_round(pooler=None, direct=None, queue=None, tasks=None), relay)

    vector = load_vectors()["accepted"][2]["health"]
    published = health.as_json()
    assert published["status"] == "down"
    assert published["problems"] == vector["problems"]
    assert published["backend"] == vector["backend"]
    assert published["relay"] == vector["relay"]
    assert all(published["queue"][key] is None for key in vector["queue"] if key != "name")


def test_an_unreachable_broker_is_down_even_when_the_database_answers() -> None:
    health = judged(probe_round(broker_connected=False))

    assert health.status == "down"
    assert health.problems == ("MQTT round trip failed: broker 127.0.0.1:1883 not connected",)


@pytest.mark.parametrize(
    ("found", "thresholds", "problem"),
    [
        (probe_round(pooler=143.26), {}, "pooler query 143.3 ms > 100 ms"),
        (probe_round(pooler=0.2, direct=0.31), {"query_ms": 0.25},
         "direct query 0.31 ms > 0.25 ms"),
        (probe_round(queue=QueueFigures(101, 1.0, 0, None)), {}, "queue depth 101 > 100"),
        (probe_round(queue=QueueFigures(5, 1.0, 4, 2.0)), {"dlq_depth": 3},
         "dead-letter queue holds 4 > 3"),
        (probe_round(tasks=TaskFigures(10, 0, 20.0, 31.0, 100.0)), {},
         "task processing p95 31 s > 30 s"),
        (probe_round(tasks=TaskFigures(994, 6, 1.0, 2.0, 99.4)), {},
         "task success 99.4 % < 99.5 %"),
    ],
)  # fmt: skip
def test_each_threshold_crossed_is_one_sentence_naming_figure_and_threshold(
    found: ProbeRound, thresholds: dict[str, float], problem: str
) -> None:
    health = judged(found, thresholds=thresholds)

    assert health.status == "degraded"
    assert health.problems == (problem,)


def test_figures_at_their_threshold_are_no_problem() -> None:
    found = probe_round(
        pooler=100.0,
        queue=QueueFigures(100, 1.0, 0, None),
        tasks=TaskFigures(995, 5, 1.0, 30.0, 99.5),
    )

    assert judged(found).problems == ()


def test_nothing_processed_in_the_hour_is_null_never_a_made_up_zero() -> None:
    health = judged(probe_round(tasks=TaskFigures(0, 0, None, None, None)))

    queue = health.as_json()["queue"]
    assert queue["processing_p95_s"] is None
    assert queue["processing_p50_s"] is None
    assert queue["task_success_pct"] is None
    assert health.status == "ok"


def test_failed_http_probe_and_full_spool_are_problems_of_their_own() -> None:
    http = ProbeResult("api_health", "http", False, 12.0, "If-None-Match answered 200, not 304")
    relay = RelaySnapshot("pooler", 0, 10, 10, 0, 1000, 5.0, spool_full=True)

    health = judged(probe_round(extra=(http,)), relay)

    assert health.problems == (
        "api_health: If-None-Match answered 200, not 304",
        "spool full: new readings wait on the broker unacknowledged",
    )


def test_a_secret_that_slips_into_a_detail_is_masked_in_the_published_text() -> None:
    leaky = ProbeResult("api_health", "http", False, None, f"refused for {SECRET}")

    text = judged(probe_round(extra=(leaky,))).to_text([SECRET])

    assert SECRET not in text
    assert "refused for ***" in json.loads(text)["problems"][0]


def test_problems_are_bounded_to_twenty_of_two_hundred_characters_counting_the_rest() -> None:
    exactly = bound_problems([f"problem {n}" for n in range(20)])
    many = bound_problems([f"problem {n}: " + "detail " * 50 for n in range(30)])

    assert len(exactly) == 20
    assert exactly[-1] == "problem 19"
    assert len(many) == 20
    assert many[-1] == "and 11 more"
    assert all(len(problem) <= 200 for problem in many)
    assert many[0].startswith("problem 0: detail")
    assert many[0].endswith("…")
