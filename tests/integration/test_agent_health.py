"""Reading a health payload: the contract vectors, and the edge cases around them."""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import pytest

from custom_components.farm_resilience.agent_health import InvalidHealthError, parse_health

from .support import ACCEPTED, AGENT_ID, REJECTED

HEALTHY: dict[str, Any] = ACCEPTED[0]["health"]


def changed(path: str, value: Any) -> bytes:
    """Return the healthy vector with one field (a dotted path) set, or left out for `...`."""
    health = copy.deepcopy(HEALTHY)
    *sections, key = path.split(".")
    target = health
    for section in sections:
        target = target[section]
    if value is ...:
        del target[key]
    else:
        target[key] = value
    return json.dumps(health).encode()


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
