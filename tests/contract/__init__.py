"""The MQTT contract between the agent and Home Assistant, as test vectors both sides load."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

VECTORS_PATH = Path(__file__).with_name("health_vectors.json")

NUMBER = (int, float)
# Section -> field -> allowed types (None in the tuple: the figure may be unknown, i.e. null).
HEALTH_FIELDS: dict[str, dict[str, tuple[type | None, ...]]] = {
    "backend": {
        "route": (str,),
        "fallbacks_total": (int,),
        "pooler_latency_ms": (*NUMBER, None),
        "direct_latency_ms": (*NUMBER, None),
    },
    "queue": {
        "name": (str,),
        "depth": (int, None),
        "oldest_age_s": (*NUMBER, None),
        "dlq_depth": (int, None),
        "processing_p95_s": (*NUMBER, None),
        "task_success_pct": (*NUMBER, None),
    },
    "relay": {
        "received_total": (int,),
        "relayed_total": (int,),
        "dead_lettered_total": (int,),
        "spool_depth": (int,),
        "e2e_latency_p95_ms": (*NUMBER, None),
    },
}
PROBE_FIELDS: dict[str, tuple[type | None, ...]] = {
    "name": (str,),
    "kind": (str,),
    "ok": (bool,),
    "latency_ms": (*NUMBER, None),
    "detail": (str,),
}
# The `tasks` section (DESIGN.md, "Tasks"): null when no task queue exists.
TASK_FIELDS: dict[str, tuple[type | None, ...]] = {
    "dlq_depth": (int, None),
    "throughput_per_s": (*NUMBER, None),
}
TASK_TYPE_FIELDS: dict[str, tuple[type | None, ...]] = {
    "succeeded": (int,),
    "failed": (int,),
    "retried": (int,),
    "dead_lettered": (int,),
    "success_pct": (*NUMBER, None),
    "p50_s": (*NUMBER, None),
    "p95_s": (*NUMBER, None),
}
WORKER_FIELDS: dict[str, tuple[type | None, ...]] = {
    "id": (str,),
    "last_seen_s": NUMBER,
    "alive": (bool,),
    "running": (int,),
    "concurrency": (int,),
}
ROUTES = ("pooler", "direct", "none")
STATUSES = ("ok", "degraded", "down")


def load_vectors() -> dict[str, Any]:
    return json.loads(VECTORS_PATH.read_text())  # type: ignore[no-any-return]


def _check(value: Any, allowed: tuple[type | None, ...], where: str) -> None:
    if value is None:
        assert None in allowed, f"{where} is null but must be known"
        return
    types = tuple(kind for kind in allowed if kind is not None)
    assert isinstance(value, types), f"{where}: {value!r} is not {types}"
    assert bool in types or not isinstance(value, bool), f"{where}: {value!r} is a bool"


def assert_health_contract(health: dict[str, Any]) -> None:
    """Fails unless `health` has every field of the contract, each of the right type."""
    assert health["v"] == 1
    assert isinstance(health["agent_id"], str)
    assert isinstance(health["ts"], str)
    assert health["ts"].endswith("Z")
    assert health["status"] in STATUSES
    for section, fields in HEALTH_FIELDS.items():
        assert isinstance(health[section], dict), section
        for field, allowed in fields.items():
            assert field in health[section], f"{section}.{field} missing"
            _check(health[section][field], allowed, f"{section}.{field}")
    assert health["backend"]["route"] in ROUTES
    assert isinstance(health["probes"], list)
    for index, probe in enumerate(health["probes"]):
        for field, allowed in PROBE_FIELDS.items():
            assert field in probe, f"probes[{index}].{field} missing"
            _check(probe[field], allowed, f"probes[{index}].{field}")
    assert isinstance(health["problems"], list)
    assert all(isinstance(problem, str) for problem in health["problems"])
    if health.get("tasks") is not None:
        assert_tasks_contract(health["tasks"])


def assert_tasks_contract(tasks: dict[str, Any]) -> None:
    """Fails unless the health's `tasks` section has every field, each of the right type."""
    assert set(tasks["depth"]) == {"high", "normal", "low"}
    for priority, depth in tasks["depth"].items():
        _check(depth, (int, None), f"tasks.depth.{priority}")
    for field, allowed in TASK_FIELDS.items():
        assert field in tasks, f"tasks.{field} missing"
        _check(tasks[field], allowed, f"tasks.{field}")
    assert isinstance(tasks["by_type"], dict)
    for name, figures in tasks["by_type"].items():
        for field, allowed in TASK_TYPE_FIELDS.items():
            assert field in figures, f"tasks.by_type.{name}.{field} missing"
            _check(figures[field], allowed, f"tasks.by_type.{name}.{field}")
    assert isinstance(tasks["workers"], list)
    for index, worker in enumerate(tasks["workers"]):
        for field, allowed in WORKER_FIELDS.items():
            assert field in worker, f"tasks.workers[{index}].{field} missing"
            _check(worker[field], allowed, f"tasks.workers[{index}].{field}")
