"""The HTTP endpoint: /metrics (Prometheus text that moves with traffic), /readyz, /health."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from tests.agent.support import wait_for_metric
from tests.contract import assert_health_contract
from tests.support.agent import TEST_SECRET, AgentProcess
from tests.support.metrics import metric_values
from tests.support.mqtt import publisher
from tests.support.waiting import wait_until
from tools.services import Mosquitto

ConfigMaker = Callable[..., dict[str, Any]]
FAST = {"interval_s": 0.5, "timeout_s": 2}


async def test_metrics_parse_as_prometheus_text_and_counters_move_with_traffic(
    make_config: ConfigMaker,
    start_agent: Callable[..., AgentProcess],
    mosquitto: Mosquitto,
    test_id: str,
) -> None:
    config = make_config(probes=FAST)
    queue = config["backend"]["queue"]
    agent = start_agent(config)
    before = await wait_for_metric(agent, 'farm_agent_health_status{status="ok"}', 1)

    with publisher(mosquitto.port, f"{test_id}-pub") as device:
        device.publish_all([(f"{test_id}/field/soil", str(n)) for n in range(5)])
    after = await wait_for_metric(agent, "farm_agent_readings_relayed_total", 5)
    text = agent.metrics()

    assert before["farm_agent_readings_received_total"] == 0
    assert after["farm_agent_readings_received_total"] == 5
    assert after["farm_agent_relay_latency_seconds_count"] == 5
    assert after['farm_agent_backend_route{route="pooler"}'] == 1
    probe = '{kind="postgres",probe="database_pooler"}'
    assert after[f"farm_agent_probe_latency_seconds_count{probe}"] >= 1
    assert after[f"farm_agent_probe_up{probe}"] == 1
    assert f'farm_agent_queue_depth{{queue="{queue}",role="main"}}' in after
    assert f'farm_agent_queue_depth{{queue="{queue}_dlq",role="dead_letter"}}' in after
    families = list(text_string_to_metric_families(text))
    assert all(family.name.startswith("farm_agent_") for family in families)
    counters = [family for family in families if family.type == "counter"]
    assert counters
    assert all(
        sample.name.endswith(("_total", "_created")) for c in counters for sample in c.samples
    )
    assert TEST_SECRET not in text


async def next_health(
    agent: AgentProcess, accept: Callable[[dict[str, Any]], bool]
) -> tuple[int, str]:
    """/health once it shows what `accept` waits for (the next probe round, or a change)."""

    def shown() -> tuple[int, str] | None:
        status, body = agent.get("/health")
        return (status, body) if status == 200 and accept(json.loads(body)) else None

    found: tuple[int, str] = await wait_until(shown, "/health showing it", 5)
    return found


async def test_health_endpoint_serves_the_latest_health_with_the_relay_p95(
    make_config: ConfigMaker,
    start_agent: Callable[..., AgentProcess],
    mosquitto: Mosquitto,
    test_id: str,
) -> None:
    agent = start_agent(make_config(probes=FAST))
    await wait_for_metric(agent, 'farm_agent_health_status{status="ok"}', 1)
    _, idle = agent.get("/health")

    with publisher(mosquitto.port, f"{test_id}-pub") as device:
        device.publish_all([(f"{test_id}/field/soil", str(n)) for n in range(3)])
    await wait_for_metric(agent, "farm_agent_readings_relayed_total", 3)
    status, busy = await next_health(agent, lambda h: h["relay"]["relayed_total"] == 3)

    assert json.loads(idle)["relay"]["e2e_latency_p95_ms"] is None, "nothing relayed yet"
    assert status == 200
    health = json.loads(busy)
    assert_health_contract(health)
    assert health["relay"]["relayed_total"] == 3
    assert health["relay"]["e2e_latency_p95_ms"] > 0


async def test_readyz_needs_a_route_to_the_database(
    make_config: ConfigMaker, start_agent: Callable[..., AgentProcess]
) -> None:
    healthy = start_agent(make_config(probes=FAST))
    closed = "postgresql://postgres@127.0.0.1:1/farm"
    stranded_id = f"stranded-{healthy.config_path.stem[:40]}"
    stranded = start_agent(
        make_config(agent_id=stranded_id, pooler_dsn=closed, direct_dsn=None, probes=FAST),
        ready=False,
    )

    ready_status, ready = healthy.get("/readyz")
    await wait_until(stranded.is_serving, "the stranded agent serving its endpoint", 20)
    await wait_for_metric(stranded, 'farm_agent_health_status{status="down"}', 1)
    await wait_until(
        lambda: stranded.readiness()["checks"]["mqtt_subscribed"], "the stranded agent on MQTT"
    )
    stranded_status, not_ready = stranded.get("/readyz")

    assert (ready_status, json.loads(ready)["ready"]) == (200, True)
    assert stranded_status == 503
    assert json.loads(not_ready)["checks"] == {
        "mqtt_connected": True,
        "mqtt_subscribed": True,
        "spool_writable": True,
        "spool_disk": True,
        "database_route": False,
    }
    assert json.loads(not_ready)["problems"] == ["no database route"]
    values = metric_values(stranded.metrics())
    assert values['farm_agent_probe_up{kind="postgres",probe="database_pooler"}'] == 0
