"""An agent's device through HA's MQTT integration: contract vectors, bad payloads, availability.

MQTT messages are delivered with a mocked client: what is tested here is what
the integration makes of them. The broker's own part (last will, reconnects,
replays after a restart) is tested on the real one in test_agent_broker.py.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import entity_registry as er
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.typing import MqttMockHAClient

from custom_components.farm_resilience.agent_link import AgentLink
from custom_components.farm_resilience.const import DOMAIN

from .support import (
    ACCEPTED,
    AGENT_ENTITY_IDS,
    AGENT_ID,
    FIGURES,
    HEALTHY,
    OFFLINE,
    ONLINE,
    REJECTED,
    WITH_PROBLEMS,
    WITH_TASKS,
    errors_logged,
    publish_health,
    publish_status,
    shown,
    state,
    take_integration_warnings,
    unavailable_figures,
)


def online_and_healthy(hass: HomeAssistant) -> None:
    """Deliver what a healthy agent left retained: `online` and its health."""
    publish_status(hass, ONLINE, replayed=True)
    publish_health(hass, HEALTHY["health"], replayed=True)
    assert shown(hass, HEALTHY["expect"]) == HEALTHY["expect"]


async def test_agent_entities_have_the_documented_entity_ids_on_the_agent_device(
    hass: HomeAssistant, agent: AgentLink, agent_entry: MockConfigEntry
) -> None:
    entries = er.async_entries_for_config_entry(er.async_get(hass), agent_entry.entry_id)
    assert sorted(entry.entity_id for entry in entries) == AGENT_ENTITY_IDS
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
    hass: HomeAssistant, agent: AgentLink, vector: dict[str, Any]
) -> None:
    publish_status(hass, ONLINE, replayed=True)
    publish_health(hass, vector["health"], replayed=True)

    assert shown(hass, vector["expect"]) == vector["expect"]
    assert state(hass, "route").attributes["options"] == ["pooler", "direct", "none"]
    assert state(hass, "relayed_total").attributes["state_class"] == "total_increasing"
    assert state(hass, "pooler_latency").attributes["unit_of_measurement"] == "ms"
    assert state(hass, "backend_problem").attributes["device_class"] == "problem"
    assert state(hass, "connectivity").attributes["device_class"] == "connectivity"


async def test_live_contract_vectors_replace_each_other_including_unknown_figures(
    hass: HomeAssistant, agent: AgentLink
) -> None:
    publish_status(hass, ONLINE)

    for vector in [*ACCEPTED, HEALTHY]:
        publish_health(hass, vector["health"])
        assert shown(hass, vector["expect"]) == vector["expect"], vector["name"]


@pytest.mark.parametrize("rejected", REJECTED, ids=[vector["name"] for vector in REJECTED])
async def test_rejected_payload_is_ignored_logged_once_and_the_last_good_values_stay(
    hass: HomeAssistant,
    agent: AgentLink,
    caplog: pytest.LogCaptureFixture,
    rejected: dict[str, Any],
) -> None:
    online_and_healthy(hass)

    for _ in range(3):
        publish_health(hass, rejected["payload"])

    assert agent.rejected == 3
    assert shown(hass, HEALTHY["expect"]) == HEALTHY["expect"]
    (warning,) = take_integration_warnings(caplog)
    assert warning.startswith(f"Agent {AGENT_ID}: ignored health payload ")
    assert "the last good values stay" in warning
    assert errors_logged(caplog) == []

    publish_health(hass, WITH_PROBLEMS["health"])
    assert shown(hass, WITH_PROBLEMS["expect"]) == WITH_PROBLEMS["expect"]
    publish_health(hass, rejected["payload"])
    assert agent.rejected == 4
    assert len(take_integration_warnings(caplog)) == 1
    assert shown(hass, WITH_PROBLEMS["expect"]) == WITH_PROBLEMS["expect"]


def hostile(path: str, value: Any) -> str:
    """Return the healthy vector's health with one field (a dotted path) set to `value`."""
    health = copy.deepcopy(HEALTHY["health"])
    *sections, key = path.split(".")
    target = health
    for section in sections:
        target = target[section]
    target[key] = value
    return json.dumps(health)


HOSTILE_HEALTH: list[str | bytes] = [
    "[" * 100_000 + "]" * 100_000,  # deeper than any parser's recursion
    '{"v": ' * 100_000 + "1" + "}" * 100_000,
    hostile("backend.pooler_latency_ms", 10**400),  # beyond any float
    hostile("queue.depth", 10**300),  # 301 digits: too long for a state
    hostile("agent_id", "farm-east" * 100_000),  # a megabyte to quote
    hostile("ts", "Z" * 1_000_000),
    "\ufffd" * 500_000,
    "x" * 2_000_000,
    b"\xff\xfe\x00",  # not UTF-8
]


async def test_hostile_payloads_change_nothing_raise_nothing_and_are_logged_once_briefly(
    hass: HomeAssistant, agent: AgentLink, caplog: pytest.LogCaptureFixture
) -> None:
    online_and_healthy(hass)

    for payload in HOSTILE_HEALTH:
        publish_health(hass, payload)
    publish_status(hass, "online?" * 200_000)

    assert agent.rejected == len(HOSTILE_HEALTH) + 1
    assert shown(hass, HEALTHY["expect"]) == HEALTHY["expect"]
    (warning,) = take_integration_warnings(caplog)
    assert len(warning) < 300, warning
    assert len(agent.last_rejection or "") < 300
    assert errors_logged(caplog) == []
    publish_health(hass, WITH_PROBLEMS["health"])
    assert shown(hass, WITH_PROBLEMS["expect"]) == WITH_PROBLEMS["expect"]


async def test_an_unknown_status_payload_is_ignored_and_logged_once(
    hass: HomeAssistant, agent: AgentLink, caplog: pytest.LogCaptureFixture
) -> None:
    online_and_healthy(hass)

    publish_status(hass, "rebooting")
    publish_status(hass, "ONLINE")

    assert agent.rejected == 2
    assert take_integration_warnings(caplog) == [
        f"Agent {AGENT_ID}: ignored status 'rebooting' is neither online nor offline; "
        "the last good values stay (further ones are logged at debug)"
    ]
    assert shown(hass, HEALTHY["expect"]) == HEALTHY["expect"]


async def test_offline_makes_the_figures_unavailable_and_online_brings_the_last_ones_back(
    hass: HomeAssistant, agent: AgentLink
) -> None:
    online_and_healthy(hass)

    publish_status(hass, OFFLINE)

    assert state(hass, "connectivity").state == "off"
    assert unavailable_figures(hass) == FIGURES
    assert state(hass, "backend_problem").state == "unavailable"
    publish_status(hass, ONLINE)
    assert shown(hass, HEALTHY["expect"]) == HEALTHY["expect"]


async def test_without_any_status_the_figures_stay_unavailable_even_with_retained_health(
    hass: HomeAssistant, agent: AgentLink
) -> None:
    publish_health(hass, HEALTHY["health"], replayed=True)

    assert agent.data.health is not None
    assert state(hass, "connectivity").state == "off"
    assert unavailable_figures(hass) == FIGURES


async def test_retained_offline_followed_by_live_health_makes_the_agent_available(
    hass: HomeAssistant, agent: AgentLink
) -> None:
    # A will delivered after the agent had reconnected leaves `offline` retained.
    publish_status(hass, OFFLINE, replayed=True)
    publish_health(hass, HEALTHY["health"], replayed=True)
    assert state(hass, "connectivity").state == "off"

    publish_health(hass, WITH_PROBLEMS["health"])  # the running agent's next health, live

    assert shown(hass, WITH_PROBLEMS["expect"]) == WITH_PROBLEMS["expect"]
    assert state(hass, "connectivity").state == "on"


async def test_agent_entry_works_without_a_hub(
    hass: HomeAssistant, agent: AgentLink, agent_entry: MockConfigEntry
) -> None:
    publish_status(hass, ONLINE, replayed=True)
    publish_health(hass, WITH_PROBLEMS["health"], replayed=True)

    assert hass.config_entries.async_entries(DOMAIN) == [agent_entry]
    assert shown(hass, WITH_PROBLEMS["expect"]) == WITH_PROBLEMS["expect"]


async def test_agent_entry_retries_while_mqtt_is_not_set_up(
    hass: HomeAssistant, agent_entry: MockConfigEntry
) -> None:
    assert not await hass.config_entries.async_setup(agent_entry.entry_id)

    assert agent_entry.state is ConfigEntryState.SETUP_RETRY
    assert agent_entry.reason == (
        "The MQTT integration is not set up or not available yet; the agent waits for it"
    )


async def test_an_agent_s_two_devices_from_before_become_one_keeping_the_entity_ids(
    hass: HomeAssistant, mqtt_mock: MqttMockHAClient, agent_entry: MockConfigEntry
) -> None:
    # Before, the agent's own MQTT discovery and the integration made a device each.
    devices = dr.async_get(hass)
    (mqtt_entry,) = hass.config_entries.async_entries("mqtt")
    ours = devices.async_get_or_create(
        config_entry_id=agent_entry.entry_id,
        identifiers={(DOMAIN, f"agent_{AGENT_ID}")},
        name=AGENT_ID,
    )
    er.async_get(hass).async_get_or_create(
        "sensor",
        DOMAIN,
        f"agent_{AGENT_ID}_queue_depth",
        config_entry=agent_entry,
        device_id=ours.id,
        suggested_object_id="farm_east_queue_depth",
    )
    devices.async_get_or_create(
        config_entry_id=mqtt_entry.entry_id,
        identifiers={("mqtt", f"farm_agent_{AGENT_ID}")},
        name=f"Farm agent {AGENT_ID}",
    )

    assert await hass.config_entries.async_setup(agent_entry.entry_id)
    await hass.async_block_till_done()

    (device,) = devices.devices.values()
    assert device.config_entries == {mqtt_entry.entry_id, agent_entry.entry_id}
    assert device.name == AGENT_ID
    entries = er.async_entries_for_device(er.async_get(hass), device.id)
    assert sorted(entry.entity_id for entry in entries) == AGENT_ENTITY_IDS


def agent_device(hass: HomeAssistant) -> dr.DeviceEntry:
    """Return agent farm-east's device."""
    device = dr.async_get(hass).async_get_device(identifiers={(DOMAIN, f"agent_{AGENT_ID}")})
    assert device is not None
    return device


async def test_agent_device_shows_the_version_the_agent_reports_and_follows_an_upgrade(
    hass: HomeAssistant, agent: AgentLink
) -> None:
    publish_status(hass, ONLINE, replayed=True)
    publish_health(hass, WITH_TASKS["health"], replayed=True)
    await hass.async_block_till_done()
    assert agent_device(hass).sw_version == "0.2.0"

    upgraded = {**WITH_TASKS["health"], "ts": "2026-12-01T05:00:00.000Z", "version": "0.3.0"}
    publish_health(hass, upgraded)
    await hass.async_block_till_done()

    assert agent_device(hass).sw_version == "0.3.0"
    assert (
        len(dr.async_entries_for_config_entry(dr.async_get(hass), agent.config_entry.entry_id)) == 1
    )


async def test_an_agent_that_reports_no_version_leaves_the_device_version_unset(
    hass: HomeAssistant, agent: AgentLink
) -> None:
    online_and_healthy(hass)
    await hass.async_block_till_done()

    assert agent_device(hass).sw_version is None


async def test_task_figures_and_objectives_show_on_the_agent_device_with_their_details(
    hass: HomeAssistant, agent: AgentLink
) -> None:
    publish_status(hass, ONLINE, replayed=True)
    publish_health(hass, WITH_TASKS["health"], replayed=True)

    assert shown(hass, WITH_TASKS["expect"]) == WITH_TASKS["expect"]
    types = state(hass, "task_success_rate").attributes["types"]
    assert types["process_sensor_data"] == {
        "succeeded": 120,
        "failed": 2,
        "retried": 3,
        "dead_lettered": 1,
        "success_pct": 99.17,
        "p50_s": 0.4,
        "p95_s": 1.2,
    }
    assert [worker["alive"] for worker in state(hass, "workers_alive").attributes["workers"]] == [
        True,
        False,
    ]
    objectives = state(hass, "slo_error_budget_remaining").attributes["objectives"]
    assert [(o["name"], o["status"]) for o in objectives] == [
        ("database_availability", "ok"),
        ("task_success", "at_risk"),
    ]
    assert state(hass, "slo_status").attributes["options"] == ["ok", "at_risk", "breached"]
    assert state(hass, "task_processing_p95").attributes["unit_of_measurement"] == "s"
