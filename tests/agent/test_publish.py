"""What the running agent tells Home Assistant over MQTT: status, last will, health, discovery."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from farm_agent.config_file import parse_config
from farm_agent.health.discovery import discovery_messages
from farm_agent.health.publishing import ANNOUNCE_EVERY_S
from farm_agent.topics import health_topic, status_topic
from tests.contract import assert_health_contract, load_vectors
from tests.support.agent import AgentProcess
from tests.support.mqtt import Watcher, publisher
from tests.support.queues import create_queues
from tools.services import Mosquitto, PgBouncer, Postgres

ConfigMaker = Callable[..., dict[str, Any]]
FAST = {"interval_s": 0.5, "timeout_s": 2}
# One round, then none for the rest of the test.
IDLE = {"interval_s": 300, "timeout_s": 2}


def topics_of(config: dict[str, Any]) -> tuple[str, str]:
    prefix = config["mqtt"].get("topic_prefix", "farm_resilience")
    return status_topic(prefix, config["agent_id"]), health_topic(prefix, config["agent_id"])


async def test_status_is_retained_online_while_running_and_offline_after_a_clean_stop(
    make_config: ConfigMaker,
    start_agent: Callable[..., AgentProcess],
    watch: Callable[..., Watcher],
) -> None:
    config = make_config(probes=FAST)
    status, _ = topics_of(config)
    agent = start_agent(config)
    await watch(status).wait_for(status, lambda m: m.text == "online")

    late = watch(status)
    retained = await late.wait_for(status)
    assert (retained.text, retained.retain) == ("online", True)

    assert agent.terminate() == 0
    await late.wait_for(status, lambda m: m.text == "offline")
    after = await watch(status).wait_for(status)
    assert (after.text, after.retain) == ("offline", True)


async def test_sigkill_makes_the_broker_publish_the_offline_will(
    make_config: ConfigMaker,
    start_agent: Callable[..., AgentProcess],
    watch: Callable[..., Watcher],
) -> None:
    config = make_config(probes=FAST)
    status, _ = topics_of(config)
    agent = start_agent(config, ready=False)
    watcher = watch(status)
    await watcher.wait_for(status, lambda m: m.text == "online")

    agent.kill()

    will = await watcher.wait_for(status, lambda m: m.text == "offline", timeout=5)
    assert will.text == "offline"
    retained = await watch(status).wait_for(status)
    assert (retained.text, retained.retain) == ("offline", True)


async def test_health_is_retained_each_interval_and_keeps_the_contract(
    make_config: ConfigMaker,
    start_agent: Callable[..., AgentProcess],
    watch: Callable[..., Watcher],
    postgres: Postgres,
) -> None:
    config = make_config(probes=FAST)
    backend = config["backend"]
    await create_queues(postgres.dsn, backend["queue"], backend["dead_letter_queue"])
    _, health = topics_of(config)
    watcher = watch(health)
    start_agent(config)

    await watcher.wait_for(health, timeout=10)
    first = watcher.on(health)[0]
    await watcher.wait_for(health, lambda m: m.json()["ts"] != first.json()["ts"], timeout=5)

    for message in watcher.on(health):
        assert_health_contract(message.json())
    latest = (await watch(health).wait_for(health, lambda m: m.retain)).json()
    assert latest["agent_id"] == config["agent_id"]
    assert latest["status"] == "ok", latest["problems"]
    assert latest["backend"]["route"] == "pooler"
    assert latest["queue"]["name"] == backend["queue"]
    kinds = {probe["name"]: probe["kind"] for probe in latest["probes"]}
    assert kinds == {
        "database_pooler": "postgres",
        "database_direct": "postgres",
        "queue": "queue",
        "tasks": "tasks",
        "mqtt_round_trip": "mqtt",
    }


async def test_published_health_has_every_field_the_contract_vectors_show(
    make_config: ConfigMaker,
    start_agent: Callable[..., AgentProcess],
    watch: Callable[..., Watcher],
    endpoint: Any,
) -> None:
    http = [{"name": "api_health", "url": endpoint.url("/cached"), "expect_cache": True}]
    config = make_config(probes={**FAST, "http": http})
    _, health = topics_of(config)
    watcher = watch(health)
    start_agent(config, ready=False)

    published = (await watcher.wait_for(health, timeout=10)).json()

    assert_health_contract(published)
    for vector in load_vectors()["accepted"][:3]:
        expected = vector["health"]
        assert set(expected) <= set(published)
        for section in ("backend", "queue", "relay"):
            assert set(expected[section]) <= set(published[section]), section
    api = next(probe for probe in published["probes"] if probe["name"] == "api_health")
    example = load_vectors()["accepted"][0]["health"]["probes"][1]
    assert set(example) <= set(api)
    assert set(example["cache"]) <= set(api["cache"])


PoolerKilled = Callable[[dict[str, float]], Awaitable[tuple[Watcher, str, dict[str, Any]]]]


@pytest.fixture
def pooler_killed(
    make_config: ConfigMaker,
    start_agent: Callable[..., AgentProcess],
    watch: Callable[..., Watcher],
    mosquitto: Mosquitto,
    pgbouncer: PgBouncer,
    test_id: str,
) -> Iterator[PoolerKilled]:
    """An agent on the pooler whose pooler dies under traffic (back after the test).

    Returns the watcher of its health topic, the topic, and the first health on `direct`.
    """

    async def run(probes: dict[str, float]) -> tuple[Watcher, str, dict[str, Any]]:
        config = make_config(probes=probes)
        _, health = topics_of(config)
        watcher = watch(health)
        start_agent(config)
        await watcher.wait_for_health(health, lambda h: h["backend"]["route"] == "pooler")
        pgbouncer.kill()
        with publisher(mosquitto.port, f"{test_id}-pub") as device:
            device.publish_all([(f"{test_id}/field/soil", str(n)) for n in range(5)])
        moved = await watcher.wait_for_health(
            health, lambda h: h["backend"]["route"] == "direct", timeout=30
        )
        return watcher, health, moved

    yield run
    if not pgbouncer.running:
        pgbouncer.start()


async def test_health_follows_the_relay_to_direct_when_the_pooler_dies_and_names_it(
    pooler_killed: PoolerKilled,
) -> None:
    watcher, health, moved = await pooler_killed(FAST)
    named = await watcher.wait_for_health(
        health, lambda h: any(p.startswith("pooler down:") for p in h["problems"])
    )

    assert moved["backend"]["fallbacks_total"] >= 1
    assert named["status"] == "degraded"
    assert named["backend"]["pooler_latency_ms"] is None
    assert named["backend"]["direct_latency_ms"] is not None
    assert_health_contract(named)


async def test_a_route_change_is_published_at_once_not_at_the_next_probe_round(
    pooler_killed: PoolerKilled,
) -> None:
    _, _, moved = await pooler_killed(IDLE)

    assert moved["backend"]["fallbacks_total"] == 1
    assert moved["status"] == "ok", "judged on the last round, in which the pooler answered"


async def test_an_idle_agent_sleeps_until_its_next_probe_round(
    make_config: ConfigMaker,
    start_agent: Callable[..., AgentProcess],
    watch: Callable[..., Watcher],
) -> None:
    config = make_config(probes=IDLE)
    _, health = topics_of(config)
    watcher = watch(health)
    agent = start_agent(config)
    await watcher.wait_for(health)
    await asyncio.sleep(1)  # the first round's connections are closed by then

    before = event_loop_wakeups(agent.pid)
    await asyncio.sleep(3)
    woke = event_loop_wakeups(agent.pid) - before

    assert woke <= 1, f"the event loop woke {woke} times in 3 s with nothing to do"


def event_loop_wakeups(pid: int) -> int:
    """How often the process's main thread, its event loop, has slept and woken (Linux)."""
    status = Path(f"/proc/{pid}/task/{pid}/status").read_text()
    line = next(line for line in status.splitlines() if line.startswith("voluntary_ctxt"))
    return int(line.split()[1])


async def test_discovery_announces_each_key_figure_with_availability_device_and_classes(
    make_config: ConfigMaker,
    start_agent: Callable[..., AgentProcess],
    watch: Callable[..., Watcher],
) -> None:
    config = make_config(probes=FAST)
    node = f"farm_agent_{config['agent_id']}"
    status, health = topics_of(config)
    watcher = watch(f"homeassistant/+/{node}/+/config")
    start_agent(config, ready=False)

    await watcher.wait_for(f"homeassistant/sensor/{node}/relayed/config")
    await watcher.wait_for(f"homeassistant/binary_sensor/{node}/backend_problem/config")
    configs = {m.topic.split("/")[3]: m.json() for m in watcher.messages}

    assert {
        "connectivity",
        "backend_problem",
        "route",
        "pooler_latency",
        "direct_latency",
        "queue_depth",
        "dlq_depth",
        "spool_depth",
        "relay_latency_p95",
        "relayed",
    } <= set(configs)
    for key, entity in configs.items():
        assert entity["unique_id"] == f"{node}_{key}"
        assert entity["device"]["identifiers"] == [node]
        if key != "connectivity":
            assert entity["state_topic"] == health
            assert entity["availability_topic"] == status
    assert configs["connectivity"]["state_topic"] == status
    assert configs["connectivity"]["device_class"] == "connectivity"
    assert configs["backend_problem"]["device_class"] == "problem"
    assert configs["route"]["device_class"] == "enum"
    assert configs["route"]["options"] == ["pooler", "direct", "none"]
    assert configs["pooler_latency"]["unit_of_measurement"] == "ms"
    assert configs["pooler_latency"]["device_class"] == "duration"
    assert configs["queue_depth"]["state_class"] == "measurement"
    assert configs["relayed"]["state_class"] == "total_increasing"
    late = watch(f"homeassistant/+/{node}/+/config")
    kept = await late.wait_for(f"homeassistant/sensor/{node}/relayed/config", lambda m: m.retain)
    assert kept.json() == configs["relayed"]


async def test_discovery_is_sent_again_when_home_assistant_comes_online(
    make_config: ConfigMaker,
    start_agent: Callable[..., AgentProcess],
    watch: Callable[..., Watcher],
) -> None:
    config = make_config(probes=FAST)
    node = f"farm_agent_{config['agent_id']}"
    topic = f"homeassistant/sensor/{node}/queue_depth/config"
    # Messages of one connection arrive in order: the last one closes the first round.
    last, _ = discovery_messages(parse_config(config))[-1]
    watcher = watch(f"homeassistant/+/{node}/+/config")
    start_agent(config, ready=False)
    await watcher.wait_for(last)
    watcher.clear()

    watcher.publish("homeassistant/status", "offline")
    watcher.publish("homeassistant/status", "online")

    again = await watcher.wait_for(topic, timeout=5)
    assert json.loads(again.payload)["unique_id"] == f"{node}_queue_depth"
    assert len({m.topic for m in watcher.messages}) == len(watcher.messages)


async def test_a_flood_of_home_assistant_announcements_gets_a_few_discovery_rounds_not_one_each(
    make_config: ConfigMaker,
    start_agent: Callable[..., AgentProcess],
    watch: Callable[..., Watcher],
    mosquitto: Mosquitto,
    test_id: str,
) -> None:
    discovery = f"{test_id}_ha"
    config = make_config(mqtt={"discovery_prefix": discovery})
    node = f"farm_agent_{config['agent_id']}"
    marker = f"{discovery}/sensor/{node}/queue_depth/config"
    birth = f"{discovery}/status"
    last, _ = discovery_messages(parse_config(config))[-1]
    watcher = watch(f"{discovery}/+/{node}/+/config", birth)
    agent = start_agent(config, ready=False)
    await watcher.wait_for(last)
    watcher.clear()

    # Anyone allowed to publish Home Assistant's announcement can send a thousand.
    with publisher(mosquitto.port, f"{test_id}-flood") as flooder:
        flooder.publish_all([(birth, "online")] * 1000)

    def answered_after_the_last_announcement() -> bool:
        topics = [message.topic for message in watcher.messages]
        announced = [index for index, topic in enumerate(topics) if topic == birth]
        return bool(announced) and marker in topics[announced[-1] :]

    deadline = time.monotonic() + ANNOUNCE_EVERY_S + 10
    while not answered_after_the_last_announcement():
        assert time.monotonic() < deadline, "no discovery after the last announcement"
        await asyncio.sleep(0.05)
    await asyncio.sleep(1)  # room for a straggling round

    assert len(watcher.on(birth)) == 1000
    rounds = len(watcher.on(marker))
    assert 1 <= rounds <= 3, f"{rounds} discovery rounds for one flood"
    assert agent.running


async def test_discovery_prefix_null_publishes_no_discovery_at_all(
    make_config: ConfigMaker,
    start_agent: Callable[..., AgentProcess],
    watch: Callable[..., Watcher],
) -> None:
    config = make_config(probes=FAST, mqtt={"discovery_prefix": None})
    _, health = topics_of(config)
    watcher = watch("#")
    start_agent(config, ready=False)
    await watcher.wait_for(health, timeout=10)
    watcher.publish("homeassistant/status", "online")
    await watcher.wait_for(health, lambda m: not m.retain, timeout=5)

    node = f"farm_agent_{config['agent_id']}"
    assert not [m.topic for m in watcher.messages if node in m.topic]
