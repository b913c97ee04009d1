"""Agent devices on a real broker: contract vectors, availability rules, broker restarts."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from freezegun.api import FrozenDateTimeFactory
from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import entity_registry as er
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.farm_resilience.agent_link import AgentLink
from custom_components.farm_resilience.const import DOMAIN
from tools.services import Mosquitto

from .mqtt_support import (
    ACCEPTED,
    AGENT_ID,
    OFFLINE,
    ONLINE,
    REJECTED,
    StandInAgent,
    errors_logged,
    restart_broker,
    settle,
    shown,
    state,
    take_integration_warnings,
    wait_until,
)

HEALTHY = ACCEPTED[0]
FIGURES = [key for key in HEALTHY["expect"] if key not in ("connectivity", "problems")]


async def set_up(hass: HomeAssistant, entry: MockConfigEntry) -> AgentLink:
    """Set up the agent entry and return its link."""
    assert await hass.config_entries.async_setup(entry.entry_id)
    assert isinstance(entry.runtime_data, AgentLink)
    return entry.runtime_data


async def wait_for_values(
    hass: HomeAssistant, freezer: FrozenDateTimeFactory, vector: dict[str, Any]
) -> None:
    """Wait until the agent's entities show the vector's `expect`, then check them once more."""
    expect = vector["expect"]
    await wait_until(hass, freezer, lambda: shown(hass, expect) == expect, vector["name"])
    assert shown(hass, expect) == expect


def with_ts(vector: dict[str, Any], ts: str) -> dict[str, Any]:
    """Return a copy of a vector's health published at `ts`."""
    health = copy.deepcopy(vector["health"])
    health["ts"] = ts
    return health


def unavailable_figures(hass: HomeAssistant) -> list[str]:
    """Return the figure entities (all but connectivity) that are unavailable."""
    return [key for key in FIGURES if state(hass, key).state == "unavailable"]


async def test_agent_entities_have_the_documented_entity_ids_on_the_agent_device(
    hass: HomeAssistant, mqtt_entry: MockConfigEntry, agent_entry: MockConfigEntry
) -> None:
    await set_up(hass, agent_entry)

    entries = er.async_entries_for_config_entry(er.async_get(hass), agent_entry.entry_id)
    assert sorted(entry.entity_id for entry in entries) == [
        "binary_sensor.farm_east_backend_problem",
        "binary_sensor.farm_east_connectivity",
        "sensor.farm_east_dead_letter_queue_depth",
        "sensor.farm_east_direct_latency",
        "sensor.farm_east_pooler_latency",
        "sensor.farm_east_queue_depth",
        "sensor.farm_east_relay_latency_p95",
        "sensor.farm_east_relayed_readings",
        "sensor.farm_east_route",
        "sensor.farm_east_spool_depth",
    ]
    device = dr.async_get(hass).async_get_device(identifiers={(DOMAIN, f"agent_{AGENT_ID}")})
    assert device is not None
    assert (device.name, device.model, device.manufacturer) == (
        AGENT_ID,
        "farm-agent",
        "Farm Resilience",
    )
    assert {entry.device_id for entry in entries} == {device.id}


@pytest.mark.parametrize("vector", ACCEPTED, ids=[vector["name"] for vector in ACCEPTED])
async def test_retained_contract_vector_shows_its_expected_values_after_set_up(
    hass: HomeAssistant,
    mqtt_entry: MockConfigEntry,
    stand_in: StandInAgent,
    agent_entry: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
    vector: dict[str, Any],
) -> None:
    stand_in.status(ONLINE)
    stand_in.health(vector["health"])

    await set_up(hass, agent_entry)

    await wait_for_values(hass, freezer, vector)
    assert state(hass, "route").attributes["options"] == ["pooler", "direct", "none"]
    assert state(hass, "relayed_total").attributes["state_class"] == "total_increasing"
    assert state(hass, "pooler_latency").attributes["unit_of_measurement"] == "ms"
    assert state(hass, "backend_problem").attributes["device_class"] == "problem"
    assert state(hass, "connectivity").attributes["device_class"] == "connectivity"


async def test_live_contract_vectors_replace_each_other_including_unknown_figures(
    hass: HomeAssistant,
    mqtt_entry: MockConfigEntry,
    stand_in: StandInAgent,
    agent_entry: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
) -> None:
    await set_up(hass, agent_entry)
    stand_in.status(ONLINE)

    for vector in [*ACCEPTED, HEALTHY]:
        stand_in.health(vector["health"])
        await wait_for_values(hass, freezer, vector)


@pytest.mark.parametrize("rejected", REJECTED, ids=[vector["name"] for vector in REJECTED])
async def test_rejected_payload_is_ignored_logged_once_and_the_last_good_values_stay(
    hass: HomeAssistant,
    mqtt_entry: MockConfigEntry,
    stand_in: StandInAgent,
    agent_entry: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
    caplog: pytest.LogCaptureFixture,
    rejected: dict[str, Any],
) -> None:
    link = await set_up(hass, agent_entry)
    stand_in.status(ONLINE)
    stand_in.health(HEALTHY["health"])
    await wait_for_values(hass, freezer, HEALTHY)

    for _ in range(3):
        stand_in.health(rejected["payload"])
    await wait_until(hass, freezer, lambda: link.rejected == 3, "three rejections")

    assert shown(hass, HEALTHY["expect"]) == HEALTHY["expect"]
    (warning,) = take_integration_warnings(caplog)
    assert warning.startswith(f"Agent {AGENT_ID}: ignored health payload ")
    assert "the last good values stay" in warning
    assert errors_logged(caplog) == []

    degraded = ACCEPTED[1]
    stand_in.health(degraded["health"])
    await wait_for_values(hass, freezer, degraded)
    stand_in.health(rejected["payload"])
    await wait_until(hass, freezer, lambda: link.rejected == 4, "a rejection after recovery")
    assert len(take_integration_warnings(caplog)) == 1
    assert shown(hass, degraded["expect"]) == degraded["expect"]


def hostile(path: str, value: Any) -> str:
    """Return the healthy vector's health with one field (a dotted path) set to `value`."""
    health = copy.deepcopy(HEALTHY["health"])
    *sections, key = path.split(".")
    target = health
    for section in sections:
        target = target[section]
    target[key] = value
    return json.dumps(health)


HOSTILE_HEALTH = [
    "[" * 100_000 + "]" * 100_000,  # deeper than any parser's recursion
    '{"v": ' * 100_000 + "1" + "}" * 100_000,
    hostile("backend.pooler_latency_ms", 10**400),  # beyond any float
    hostile("queue.depth", 10**300),  # 301 digits: too long for a state
    hostile("agent_id", "farm-east" * 100_000),  # a megabyte to quote
    hostile("ts", "Z" * 1_000_000),
    "\ufffd" * 500_000,
    "x" * 2_000_000,
]


async def test_hostile_payloads_change_nothing_raise_nothing_and_are_logged_once_briefly(
    hass: HomeAssistant,
    mqtt_entry: MockConfigEntry,
    stand_in: StandInAgent,
    agent_entry: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    link = await set_up(hass, agent_entry)
    stand_in.status(ONLINE)
    stand_in.health(HEALTHY["health"])
    await wait_for_values(hass, freezer, HEALTHY)

    for payload in HOSTILE_HEALTH:
        stand_in.health(payload, retain=False)
    stand_in.client.publish(stand_in.health_topic, b"\xff\xfe\x00", qos=1).wait_for_publish(10)
    stand_in.status("online?" * 200_000, retain=False)
    rejected = len(HOSTILE_HEALTH) + 2
    await wait_until(hass, freezer, lambda: link.rejected == rejected, "every hostile payload")

    assert shown(hass, HEALTHY["expect"]) == HEALTHY["expect"]
    (warning,) = take_integration_warnings(caplog)
    assert len(warning) < 300, warning
    assert len(link.last_rejection or "") < 300
    assert errors_logged(caplog) == []
    degraded = ACCEPTED[1]
    stand_in.health(degraded["health"])
    await wait_for_values(hass, freezer, degraded)


async def test_an_unknown_status_payload_is_ignored_and_logged_once(
    hass: HomeAssistant,
    mqtt_entry: MockConfigEntry,
    stand_in: StandInAgent,
    agent_entry: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    link = await set_up(hass, agent_entry)
    stand_in.status(ONLINE)
    stand_in.health(HEALTHY["health"])
    await wait_for_values(hass, freezer, HEALTHY)

    stand_in.status("rebooting")
    stand_in.status("ONLINE")
    await wait_until(hass, freezer, lambda: link.rejected == 2, "two rejections")

    assert take_integration_warnings(caplog) == [
        f"Agent {AGENT_ID}: ignored status 'rebooting' is neither online nor offline; "
        "the last good values stay (further ones are logged at debug)"
    ]
    assert shown(hass, HEALTHY["expect"]) == HEALTHY["expect"]


async def test_killed_agent_last_will_makes_figures_unavailable_and_restart_restores_them(
    hass: HomeAssistant,
    mqtt_entry: MockConfigEntry,
    broker: Mosquitto,
    stand_in: StandInAgent,
    agent_entry: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
) -> None:
    await set_up(hass, agent_entry)
    stand_in.status(ONLINE)
    stand_in.health(HEALTHY["health"])
    await wait_for_values(hass, freezer, HEALTHY)

    stand_in.die()
    await wait_until(
        hass, freezer, lambda: state(hass, "connectivity").state == "off", "the last will"
    )

    assert unavailable_figures(hass) == FIGURES
    assert state(hass, "backend_problem").state == "unavailable"

    restarted = StandInAgent(broker.port)
    try:
        restarted.status(ONLINE)
        await wait_for_values(hass, freezer, HEALTHY)  # the last good values come back
    finally:
        restarted.leave()


async def test_without_any_status_the_figures_stay_unavailable_even_with_retained_health(
    hass: HomeAssistant,
    mqtt_entry: MockConfigEntry,
    stand_in: StandInAgent,
    agent_entry: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
) -> None:
    stand_in.health(HEALTHY["health"])
    link = await set_up(hass, agent_entry)

    await wait_until(hass, freezer, lambda: link.health is not None, "the retained health")

    assert state(hass, "connectivity").state == "off"
    assert unavailable_figures(hass) == FIGURES


async def test_retained_offline_followed_by_live_health_makes_the_agent_available(
    hass: HomeAssistant,
    mqtt_entry: MockConfigEntry,
    stand_in: StandInAgent,
    agent_entry: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
) -> None:
    # A will delivered after the agent had reconnected leaves `offline` retained.
    stand_in.status(OFFLINE)
    stand_in.health(HEALTHY["health"])
    link = await set_up(hass, agent_entry)
    await wait_until(hass, freezer, lambda: link.health is not None, "the retained replay")
    assert state(hass, "connectivity").state == "off"

    degraded = ACCEPTED[1]
    stand_in.health(degraded["health"])  # the running agent's next health, live

    await wait_for_values(hass, freezer, degraded)
    assert state(hass, "connectivity").state == "on"


@pytest.mark.parametrize(
    ("replayed_ts", "available"),
    [("2026-11-26T04:00:00.123Z", False), ("2026-11-26T05:00:00.000Z", True)],
    ids=["same_health_as_before_the_offline", "newer_health"],
)
async def test_replayed_online_counts_only_with_health_newer_than_the_offline(
    hass: HomeAssistant,
    mqtt_entry: MockConfigEntry,
    broker: Mosquitto,
    stand_in: StandInAgent,
    agent_entry: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
    caplog: pytest.LogCaptureFixture,
    replayed_ts: str,
    available: bool,
) -> None:
    link = await set_up(hass, agent_entry)
    stand_in.status(ONLINE)
    stand_in.health(HEALTHY["health"])  # ts 2026-11-26T04:00:00.123Z
    await wait_for_values(hass, freezer, HEALTHY)
    stand_in.status(OFFLINE)
    await wait_until(hass, freezer, lambda: not link.online, "offline")
    stand_in.leave()

    def broker_replays_online() -> None:
        """A broker that lost the will in a crash (or an agent back while HA was away)."""
        old = StandInAgent(broker.port)
        old.status(ONLINE)
        old.health(with_ts(HEALTHY, replayed_ts))
        old.leave()

    health_seen_at = link.health_received_at
    await restart_broker(hass, freezer, caplog, broker, broker_replays_online)
    await wait_until(hass, freezer, lambda: link.status == ONLINE, "the replayed status")
    await wait_until(
        hass, freezer, lambda: link.health_received_at != health_seen_at, "the replayed health"
    )
    await settle(hass)

    assert link.online is available
    assert state(hass, "connectivity").state == ("on" if available else "off")
    expected_figures = [] if available else FIGURES
    assert unavailable_figures(hass) == expected_figures


async def test_broker_restart_while_ha_runs_reconnects_without_errors_and_values_stay_right(
    hass: HomeAssistant,
    mqtt_entry: MockConfigEntry,
    broker: Mosquitto,
    stand_in: StandInAgent,
    agent_entry: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await set_up(hass, agent_entry)
    stand_in.status(ONLINE)
    stand_in.health(HEALTHY["health"])
    await wait_for_values(hass, freezer, HEALTHY)
    stand_in.leave()

    await hass.async_add_executor_job(broker.stop)
    await wait_until(
        hass, freezer, lambda: state(hass, "connectivity").state == "unavailable", "the outage"
    )
    assert unavailable_figures(hass) == FIGURES
    await hass.async_add_executor_job(broker.start)
    await restart_broker(hass, freezer, caplog, broker)  # a second restart, before HA is back

    await wait_for_values(hass, freezer, HEALTHY)  # from the retained replay
    back = StandInAgent(broker.port)
    try:
        degraded = ACCEPTED[1]
        back.health(degraded["health"])
        await wait_for_values(hass, freezer, degraded)
    finally:
        back.leave()
    assert errors_logged(caplog) == []


async def test_agent_entry_works_without_a_hub(
    hass: HomeAssistant,
    mqtt_entry: MockConfigEntry,
    stand_in: StandInAgent,
    agent_entry: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
) -> None:
    stand_in.status(ONLINE)
    stand_in.health(ACCEPTED[1]["health"])

    await set_up(hass, agent_entry)

    assert hass.config_entries.async_entries(DOMAIN) == [agent_entry]
    await wait_for_values(hass, freezer, ACCEPTED[1])


async def test_agent_entry_retries_while_mqtt_is_not_set_up(
    hass: HomeAssistant, agent_entry: MockConfigEntry
) -> None:
    assert not await hass.config_entries.async_setup(agent_entry.entry_id)

    assert agent_entry.state is ConfigEntryState.SETUP_RETRY
    assert agent_entry.reason == (
        "The MQTT integration is not set up or not available yet; the agent waits for it"
    )
