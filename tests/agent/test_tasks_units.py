"""The tasks' pure parts: config, backoff, fairness, envelopes and the latency histogram."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest
from hypothesis import given
from hypothesis import strategies as st

from farm_agent import histogram
from farm_agent.config import ConfigError
from farm_agent.config_file import parse_config
from farm_agent.tasks.envelope import Delivery, dead_letter_body, read_reading, read_task
from farm_agent.tasks.fairness import FairOrder
from farm_agent.tasks.metrics import TaskMetrics
from farm_agent.tasks.task import Task
from farm_agent.tasks.worker import backoff_s
from tests.support.metrics import sample as metric_sample
from tools.services import Postgres

BACKEND = {"direct_dsn": "postgresql://farm@db.example/farm"}


def tasks_config(**tasks: Any) -> Any:
    return parse_config({"agent_id": "farm-east", "backend": BACKEND, "tasks": tasks}).tasks


def test_tasks_config_defaults_follow_the_design() -> None:
    tasks = parse_config({"agent_id": "farm-east", "backend": BACKEND}).tasks

    assert tasks.priority_queues == ("farm_tasks_high", "farm_tasks_normal", "farm_tasks_low")
    assert tasks.dead_letter_queue == "farm_tasks_dlq"
    assert (tasks.max_attempts, tasks.visibility_timeout_s, tasks.concurrency) == (5, 30, 4)
    assert (tasks.backoff_base_s, tasks.backoff_max_s, tasks.max_wait_s) == (2, 300, 60)
    assert tasks.timeout_for("anything") == 30  # probes.thresholds.processing_s
    assert tasks.handlers == {
        "sensor_reading": "farm_agent.tasks.builtin:store_readings",
        "send_notification": "farm_agent.tasks.builtin:notify_mqtt",
        "canary": "farm_agent.tasks.builtin:canary",
    }
    assert tasks.sources == ()


def test_tasks_config_takes_handlers_timeouts_and_sources() -> None:
    tasks = tasks_config(
        queue="jobs",
        dead_letter_queue="jobs_failed",
        handlers={"irrigate.zone": "farm_jobs.water:irrigate", "send_notification": None},
        timeouts={"irrigate.zone": 120},
        sources=[{"queue": "sensor_readings", "type": "sensor_reading"}],
    )

    assert tasks.queue_for("low") == "jobs_low"
    assert tasks.dead_letter_queue == "jobs_failed"
    assert tasks.handlers == {
        "sensor_reading": "farm_agent.tasks.builtin:store_readings",
        "canary": "farm_agent.tasks.builtin:canary",
        "irrigate.zone": "farm_jobs.water:irrigate",
    }
    assert tasks.timeout_for("irrigate.zone") == 120
    assert tasks.sources[0].queue == "sensor_readings"


@pytest.mark.parametrize(
    ("tasks", "named"),
    [
        ({"queue": "q" * 41}, "tasks.queue: must be at most 40 characters"),
        ({"queue": "Farm-Tasks"}, "tasks.queue: must be 1-47 characters"),
        ({"handlers": {"irrigate": "no_colon"}}, "tasks.handlers.irrigate: expected package"),
        ({"handlers": {"Irrigate Zone": "a:b"}}, "tasks.handlers.Irrigate Zone: a task type"),
        ({"timeouts": {"irrigate": 0}}, "tasks.timeouts.irrigate: value must be at least"),
        ({"max_attempts": 0}, "tasks.max_attempts:"),
        ({"concurrency": "four"}, "tasks.concurrency:"),
        ({"priority": "high"}, "tasks.priority: unknown key"),
        ({"dead_letter_queue": "farm_tasks_high"}, "tasks.dead_letter_queue: must differ"),
        (
            {"sources": [{"queue": "farm_tasks_dlq", "type": "sensor_reading"}]},
            "tasks.sources.0.queue: is already a task queue",
        ),
        ({"sources": [{"queue": "sensor_readings"}]}, "tasks.sources.0.type: required key"),
    ],
)
def test_bad_tasks_config_names_the_key(tasks: dict[str, Any], named: str) -> None:
    with pytest.raises(ConfigError) as raised:
        tasks_config(**tasks)

    assert named in str(raised.value)


def test_retry_n_waits_base_times_two_to_the_n_minus_1_capped_in_whole_seconds() -> None:
    assert [backoff_s(2, 300, attempt) for attempt in range(1, 11)] == [
        2, 4, 8, 16, 32, 64, 128, 256, 300, 300,
    ]  # fmt: skip
    assert [backoff_s(0.3, 300, attempt) for attempt in (1, 2, 3, 4)] == [1, 1, 2, 3]


def test_fair_order_reads_by_priority_until_a_lower_queue_is_overdue() -> None:
    order = FairOrder(("high", "normal", "low"), max_wait_s=60)

    assert order.plan() == [("high", None), ("normal", None), ("low", None)]
    assert order.due(0.0)
    order.checked(0.0, {"normal": 0, "low": 3})
    assert not order.due(4.9)
    assert order.due(5.0)
    assert order.plan()[0] == ("low", 3)
    assert order.plan() == [("low", 3), ("high", None), ("normal", None)]
    order.took("low", 2, 2, 3)
    assert order.plan()[0] == ("low", 1)
    # Fewer than asked for: another worker took the overdue ones.
    order.took("low", 1, 0, 1)
    assert order.plan() == [("high", None), ("normal", None), ("low", None)]


def test_fair_order_checks_within_50_ms_and_5_s() -> None:
    assert FairOrder(("h", "n"), max_wait_s=0.1).check_every_s == 0.05
    assert FairOrder(("h", "n"), max_wait_s=600).check_every_s == 5
    assert FairOrder(("h", "n"), max_wait_s=10).overdue_after_s == 5


ENVELOPE = (
    '{"v": 1, "id": "3b0f", "type": "irrigate", "priority": "low", "requeued": 2,'
    ' "payload": {"litres": 20.100000000000001}, "submitted_at": "2026-12-01T04:00:00.123Z"}'
)


def delivery(message_text: str, task: Task | None, from_source: bool = False) -> Delivery:
    now = datetime(2026, 12, 1, 4, 0, tzinfo=UTC)
    return Delivery("farm_tasks_low", 7, 3, now, now, message_text, task, None, from_source)


def test_task_envelope_is_read_and_its_dead_letter_keeps_every_field_and_digit() -> None:
    task = read_task(json.loads(ENVELOPE), '{"litres": 20.100000000000001}', 3)
    assert isinstance(task, Task)
    assert (task.id, task.type, task.priority, task.attempt) == ("3b0f", "irrigate", "low", 3)
    assert task.submitted_at == datetime(2026, 12, 1, 4, 0, 0, 123000, tzinfo=UTC)

    body = dead_letter_body(delivery(ENVELOPE, task), "RuntimeError: pump", 1796097600.5)

    assert "20.100000000000001" in body
    letter = json.loads(body)
    assert letter["requeued"] == 2
    assert letter["error"] == "RuntimeError: pump"
    assert letter["attempts"] == 3
    assert letter["failed_at"] == "2026-12-01T04:00:00.500Z"
    assert letter["queue"] == "farm_tasks_low"


def test_reading_from_a_source_is_a_task_whose_dead_letter_wraps_the_envelope() -> None:
    text = (
        '{"v": 1, "key": "farm-east:ab:1", "agent_id": "farm-east", "topic": "farm/t",'
        ' "payload": 21.5, "received_at": "2026-11-26T04:00:00.123Z"}'
    )
    task = read_reading(json.loads(text), text, "sensor_reading", 1)
    assert isinstance(task, Task)
    assert (task.id, task.type, task.priority) == ("farm-east:ab:1", "sensor_reading", "normal")

    letter = json.loads(dead_letter_body(delivery(text, task, True), "boom", 0))

    assert letter["payload"] == json.loads(text)
    assert (letter["id"], letter["type"]) == ("farm-east:ab:1", "sensor_reading")
    assert letter["submitted_at"] == "2026-11-26T04:00:00.123Z"


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        ([1], "the message is not a JSON object"),
        ({"v": 1, "type": "a", "payload": 1, "submitted_at": "2026-01-01"}, "id must be"),
        ({"v": 1, "id": "x", "type": "a", "priority": "now", "payload": 1}, "priority: must be"),
        ({"v": 1, "id": "x", "type": "a", "submitted_at": "2026-01-01"}, "no payload"),
        ({"v": 1, "id": "x", "type": "a", "payload": 1, "submitted_at": "soon"}, "submitted_at"),
    ],
)
def test_message_that_is_no_task_envelope_says_why(message: Any, reason: str) -> None:
    found = read_task(message, "null", 1)

    assert isinstance(found, str)
    assert reason in found


@given(st.lists(st.floats(min_value=0, max_value=86400), min_size=1, max_size=300))
def test_histogram_quantiles_are_within_the_stated_error(samples: list[float]) -> None:
    counts: dict[int, int] = {}
    for sample in samples:
        bucket = histogram.bucket_of(sample)
        counts[bucket] = counts.get(bucket, 0) + 1
    for q in (0.5, 0.95, 1.0):
        exact = sorted(samples)[max(1, math.ceil(q * len(samples))) - 1]
        estimate = histogram.quantile(counts, q)
        assert estimate is not None
        bound = histogram.RELATIVE_ERROR * exact + histogram.ABSOLUTE_ERROR_S
        assert abs(estimate - exact) <= bound + 1e-9


def test_histogram_of_nothing_has_no_quantile() -> None:
    assert histogram.quantile({}, 0.95) is None
    assert histogram.merge([{"3": 2}, {"3": 1, "70": 4}]) == {3: 3, 70: 4}


async def test_database_puts_latencies_in_the_same_buckets_as_python(postgres: Postgres) -> None:
    values = [0.0, 0.0005, 0.001, 0.0011, 0.5, 1.0, 2.5, 30.0, 3600.0, 10**9]
    connection = await asyncpg.connect(postgres.dsn)
    try:
        found = await connection.fetch(
            f"SELECT {histogram.bucket_sql('v')} AS bucket FROM unnest($1::float8[]) AS v",
            values,
        )
    finally:
        await connection.close()

    assert [row["bucket"] for row in found] == [histogram.bucket_of(v) for v in values]


def test_worker_metrics_count_outcomes_and_put_durations_in_their_le_bucket() -> None:
    metrics = TaskMetrics()
    for duration_s in (0.001, 0.25, 0.2500001, 5000.0):
        metrics.settled("feed", "succeeded", duration_s)
    metrics.settled("feed", "retried", None)

    page = metrics.metrics.render()[0].decode()

    def sample(name: str, **labels: str) -> float | None:
        return metric_sample(page, name, **labels)

    assert sample("farm_agent_tasks_total", type="feed", outcome="succeeded") == 4
    assert sample("farm_agent_tasks_total", type="feed", outcome="retried") == 1
    bucket = "farm_agent_task_duration_seconds_bucket"
    assert sample(bucket, type="feed", le="0.005") == 1
    # A duration equal to a bound counts in that bound's bucket (le: less or equal).
    assert sample(bucket, type="feed", le="0.25") == 2
    assert sample(bucket, type="feed", le="0.5") == 3
    assert sample(bucket, type="feed", le="1800.0") == 3
    assert sample(bucket, type="feed", le="+Inf") == 4
    assert sample("farm_agent_task_duration_seconds_count", type="feed") == 4
    assert sample("farm_agent_task_duration_seconds_sum", type="feed") == pytest.approx(
        5000.5010001
    )
