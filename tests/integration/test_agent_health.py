"""Reading a health payload: the contract vectors, and the edge cases around them."""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import pytest

from custom_components.farm_resilience.agent_health import (
    AgentHealth,
    InvalidHealthError,
    parse_health,
)

from .support import ACCEPTED, AGENT_ID, REJECTED

HEALTHY: dict[str, Any] = ACCEPTED[0]["health"]
WITH_TASKS: dict[str, Any] = ACCEPTED[4]["health"]


def changed(path: str, value: Any, vector: dict[str, Any] = HEALTHY) -> bytes:
    """Return a vector (the healthy one) with one field (a dotted path) set, or left out (`...`).

    A number in the path is a list index.
    """
    health = copy.deepcopy(vector)
    *sections, key = path.split(".")
    target: Any = health
    for section in sections:
        target = target[int(section)] if section.isdigit() else target[section]
    if value is ...:
        del target[key]
    else:
        target[key] = value
    return json.dumps(health).encode()


def task_figures(health: AgentHealth) -> dict[str, Any]:
    """Return the task and service level figures of a health payload, by vector key."""
    tasks, slo = health.tasks, health.slo
    figures: dict[str, Any] = {
        f"task_queue_depth_{priority}": None if tasks is None else tasks.depth[priority]
        for priority in ("high", "normal", "low")
    }
    figures |= {
        "task_dlq_depth": None if tasks is None else tasks.dlq_depth,
        "task_success_rate": None if tasks is None else tasks.success_pct,
        "task_processing_p95": None if tasks is None else tasks.processing_p95_s,
        "task_throughput": None if tasks is None else tasks.throughput_per_s,
        "workers_alive": None if tasks is None else tasks.workers_alive,
        "slo_error_budget_remaining": None if slo is None else slo.budget_remaining_pct,
        "slo_status": None if slo is None or slo.status == "unknown" else slo.status,
    }
    return figures


@pytest.mark.parametrize("vector", ACCEPTED, ids=[vector["name"] for vector in ACCEPTED])
def test_accepted_vectors_read_into_the_expected_figures(vector: dict[str, Any]) -> None:
    health = parse_health(json.dumps(vector["health"]), AGENT_ID)
    expect = vector["expect"]
    figures = {
        "route": health.route,
        "pooler_latency": health.pooler_latency_ms,
        "direct_latency": health.direct_latency_ms,
        "queue_depth": health.queue_depth,
        "dlq_depth": health.dlq_depth,
        "spool_depth": health.spool_depth,
        "relay_latency_p95": health.relay_latency_p95_ms,
        "relayed_total": health.relayed_total,
        **task_figures(health),
    }

    assert figures == {key: None if expect[key] == "unknown" else expect[key] for key in figures}
    assert list(health.problems) == expect["problems"]
    assert health.has_problem is (expect["backend_problem"] == "on")


@pytest.mark.parametrize("vector", REJECTED, ids=[vector["name"] for vector in REJECTED])
def test_rejected_vectors_raise(vector: dict[str, Any]) -> None:
    with pytest.raises(InvalidHealthError):
        parse_health(vector["payload"], AGENT_ID)


@pytest.mark.parametrize(
    ("payload", "why"),
    [
        (b"\xff\xfe not utf-8", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (changed("v", True), "version True"),
        (changed("v", "1"), "version '1'"),
        (changed("ts", "2026-11-26T04:00:00"), "ts '2026-11-26T04:00:00'"),
        (changed("ts", "yesterday Z"), "ts 'yesterday Z'"),
        (changed("status", "sleeping"), "status 'sleeping'"),
        (changed("backend.route", "carrier pigeon"), "backend.route 'carrier pigeon'"),
        (changed("backend.pooler_latency_ms", True), "backend.pooler_latency_ms True"),
        (changed("backend.pooler_latency_ms", "3"), "backend.pooler_latency_ms '3'"),
        (changed("backend.pooler_latency_ms", -1.0), "backend.pooler_latency_ms -1.0"),
        (changed("queue.depth", 12.5), "queue.depth 12.5"),
        (changed("queue.depth", -1), "queue.depth -1"),
        (changed("relay", None), "relay is not an object"),
        (changed("problems", ["ok", 3]), "problems is not a list of strings"),
        (b"[" * 100_000 + b"]" * 100_000, "not JSON (nested too deeply)"),
        (b'{"v": ' * 100_000 + b"1" + b"}" * 100_000, "not JSON (nested too deeply)"),
        (changed("backend.pooler_latency_ms", 10**400), "backend.pooler_latency_ms 1000"),
        (changed("queue.depth", 2**63), "queue.depth 9223372036854775808 is not a count"),
        (changed("relay.relayed_total", 10**300), "relay.relayed_total 1000"),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_payloads_with_a_known_field_wrong_are_rejected_naming_the_field(
    payload: bytes, why: str
) -> None:
    with pytest.raises(InvalidHealthError, match=f"^{re.escape(why)}"):
        parse_health(payload, AGENT_ID)


def test_the_largest_figures_an_agent_can_send_are_read() -> None:
    health = copy.deepcopy(HEALTHY)
    health["relay"]["relayed_total"] = 2**63 - 1  # a bigint, a Prometheus counter
    health["backend"]["pooler_latency_ms"] = 1.7e308

    read = parse_health(json.dumps(health), AGENT_ID)

    assert read.relayed_total == 2**63 - 1
    assert read.pooler_latency_ms == 1.7e308


def test_not_a_number_figure_is_rejected() -> None:
    health = json.dumps(HEALTHY).replace('"pooler_latency_ms": 3.1', '"pooler_latency_ms": NaN')

    with pytest.raises(InvalidHealthError, match="pooler_latency_ms nan is out of range"):
        parse_health(health, AGENT_ID)


def test_a_figure_left_out_is_unknown_never_zero() -> None:
    health = parse_health(changed("queue.depth", ...), AGENT_ID)

    assert health.queue_depth is None
    assert health.dlq_depth == 0


def with_tasks(path: str, value: Any) -> bytes:
    """Return the vector with tasks and objectives, one field set (a dotted path)."""
    return changed(path, value, WITH_TASKS)


@pytest.mark.parametrize(
    ("payload", "why"),
    [
        (with_tasks("version", 2), "version 2 is not a text"),
        (with_tasks("version", "x" * 65), "version 'xxxxxxxx"),
        (with_tasks("tasks", []), "tasks is not an object"),
        (with_tasks("tasks.depth", 15), "tasks.depth is not an object"),
        (with_tasks("tasks.depth.high", -1), "tasks.depth.high -1 is not a count"),
        (with_tasks("tasks.dlq_depth", 1.5), "tasks.dlq_depth 1.5 is not a count"),
        (with_tasks("tasks.throughput_per_s", "fast"), "tasks.throughput_per_s 'fast'"),
        (with_tasks("tasks.by_type", []), "tasks.by_type is not an object"),
        (
            with_tasks("tasks.by_type.sensor_reading.success_pct", 100.5),
            "tasks.by_type.sensor_reading.success_pct 100.5 is out of range",
        ),
        (
            with_tasks("tasks.by_type.sensor_reading.p95_s", -0.1),
            "tasks.by_type.sensor_reading.p95_s -0.1 is out of range",
        ),
        (with_tasks("tasks.workers", {}), "tasks.workers is not a list"),
        (with_tasks("tasks.workers.0.id", ""), "tasks.workers[0].id '' is not a text"),
        (with_tasks("tasks.workers.1.alive", 0), "tasks.workers[1].alive 0 is not true or false"),
        (with_tasks("slo", "ok"), "slo is not an object"),
        (with_tasks("slo.objectives", {}), "slo.objectives is not a list"),
        (
            with_tasks("slo.objectives.0.target_pct", 0),
            "slo.objectives[0].target_pct 0 is not a percentage above 0",
        ),
        (
            with_tasks("slo.objectives.1.status", "fine"),
            "slo.objectives[1].status 'fine' is not one of ok, at_risk, breached, unknown",
        ),
        (
            with_tasks("slo.objectives.1.burn_rate_1h", -1),
            "slo.objectives[1].burn_rate_1h -1 is out of range",
        ),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_task_and_objective_fields_wrong_reject_the_payload_naming_the_field(
    payload: bytes, why: str
) -> None:
    with pytest.raises(InvalidHealthError, match=f"^{re.escape(why)}"):
        parse_health(payload, AGENT_ID)


def test_an_overspent_error_budget_is_read_as_it_is_reported() -> None:
    health = parse_health(with_tasks("slo.objectives.1.budget_remaining_pct", -250.0), AGENT_ID)

    assert health.slo is not None
    assert health.slo.budget_remaining_pct == -250.0


def test_task_types_and_workers_beyond_twenty_count_in_the_figures_but_are_not_all_kept() -> None:
    health = copy.deepcopy(WITH_TASKS)
    health["tasks"]["by_type"] = {
        f"type_{n:02}": {"succeeded": 10, "dead_lettered": 0, "p95_s": float(n)} for n in range(30)
    }
    health["tasks"]["workers"] = [{"id": f"w{n}", "alive": n % 2 == 0} for n in range(50)]

    tasks = parse_health(json.dumps(health), AGENT_ID).tasks

    assert tasks is not None
    assert (len(tasks.by_type), tasks.types, tasks.processing_p95_s) == (20, 30, 29.0)
    assert tasks.workers is not None
    assert (len(tasks.workers), tasks.workers_alive) == (20, 25)
    assert tasks.success_pct == 100.0


def test_an_agent_without_version_tasks_or_objectives_reads_as_before() -> None:
    health = parse_health(json.dumps(HEALTHY), AGENT_ID)

    assert (health.version, health.tasks, health.slo) == (None, None, None)
