"""Agents discovered over MQTT (real broker), added by hand, reconfigured; one entry per agent.

With the agent's own HA MQTT discovery on as well, an agent is still one device.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from freezegun.api import FrozenDateTimeFactory
from homeassistant.config_entries import SOURCE_MQTT, SOURCE_USER
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.service_info.mqtt import MqttServiceInfo
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.farm_resilience.const import DOMAIN
from farm_agent.config_file import parse_config
from farm_agent.health.discovery import discovery_messages
from tests.support.agent import agent_config
from tools.services import Mosquitto

from .support import (
    ACCEPTED,
    AGENT_ENTITY_IDS,
    AGENT_ID,
    HEALTHY,
    ONLINE,
    STATUS_TOPIC,
    StandInAgent,
    clear_retained,
    discovered_flows,
    shown,
    wait_until,
)


def service_info(topic: str, payload: str) -> MqttServiceInfo:
    """Return what HA's MQTT integration hands a discovery flow."""
    return MqttServiceInfo(
        topic=topic,
        payload=payload,
        qos=0,
        retain=True,
        subscribed_topic="farm_resilience/agent/+/status",
        timestamp=0.0,
    )


async def test_retained_status_on_the_broker_is_discovered_and_confirm_creates_the_device(
    hass: HomeAssistant,
    mqtt_entry: MockConfigEntry,
    stand_in: StandInAgent,
    freezer: FrozenDateTimeFactory,
) -> None:
    healthy = ACCEPTED[0]
    stand_in.status(ONLINE)
    stand_in.health(healthy["health"])

    await wait_until(hass, freezer, lambda: bool(discovered_flows(hass)), "discovery")

    (flow,) = discovered_flows(hass)
    assert flow["step_id"] == "confirm"
    assert flow["context"]["unique_id"] == f"agent_{AGENT_ID}"
    assert flow["context"]["title_placeholders"] == {"name": AGENT_ID}
    result = await hass.config_entries.flow.async_configure(flow["flow_id"], {})

    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == AGENT_ID
    assert result["data"] == {"agent_id": AGENT_ID}
    entry = result["result"]
    device = dr.async_get(hass).async_get_device(identifiers={(DOMAIN, f"agent_{AGENT_ID}")})
    assert device is not None
    assert (device.name, device.model) == (AGENT_ID, "farm-agent")
    assert device.config_entries == {entry.entry_id}
    await wait_until(
        hass, freezer, lambda: shown(hass, healthy["expect"]) == healthy["expect"], "values"
    )


async def test_an_agent_already_configured_is_not_offered_again(
    hass: HomeAssistant, agent_entry: MockConfigEntry
) -> None:
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_MQTT}, data=service_info(STATUS_TOPIC, ONLINE)
    )

    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"


@pytest.mark.parametrize(
    ("topic", "payload"),
    [
        (STATUS_TOPIC, ""),
        ("farm_resilience/agent/Farm East/status", ONLINE),
        ("farm_resilience/agent/farm-east/health", ONLINE),
    ],
    ids=["cleared_status", "invalid_agent_id", "not_a_status_topic"],
)
async def test_discovery_of_a_cleared_status_or_a_foreign_topic_aborts(
    hass: HomeAssistant, topic: str, payload: str
) -> None:
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_MQTT}, data=service_info(topic, payload)
    )

    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "invalid_discovery_info"


async def test_discovery_under_another_prefix_keeps_the_prefix_in_the_entry(
    hass: HomeAssistant,
) -> None:
    result = await hass.config_entries.flow.async_init(
        DOMAIN,
        context={"source": SOURCE_MQTT},
        data=service_info("farm/east/agent/farm-east/status", ONLINE),
    )
    assert result["step_id"] == "confirm"
    assert result["description_placeholders"] == {
        "agent_id": AGENT_ID,
        "topic_prefix": "farm/east",
    }

    result = await hass.config_entries.flow.async_configure(result["flow_id"], {})

    assert result["data"] == {"agent_id": AGENT_ID, "topic_prefix": "farm/east"}


async def test_with_a_hub_the_user_flow_adds_an_agent_under_a_custom_prefix(
    hass: HomeAssistant, hub_entry: MockConfigEntry
) -> None:
    hass.config_entries.async_update_entry(
        hub_entry, options={**hub_entry.options, "topic_prefix": "farm/east"}
    )
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "agent"
    defaults = {str(key): key.default() for key in result["data_schema"].schema}
    assert defaults == {"agent_id": "", "topic_prefix": "farm/east"}

    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"agent_id": "Farm East", "topic_prefix": "farm/#"}
    )
    assert result["errors"] == {
        "agent_id": "invalid_agent_id",
        "topic_prefix": "invalid_topic_prefix",
    }

    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"agent_id": "farm-west", "topic_prefix": "farm/east"}
    )

    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == "farm-west"
    assert result["data"] == {"agent_id": "farm-west", "topic_prefix": "farm/east"}
    assert result["result"].unique_id == "agent_farm-west"


async def test_adding_an_agent_by_hand_twice_aborts(
    hass: HomeAssistant, hub_entry: MockConfigEntry, agent_entry: MockConfigEntry
) -> None:
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})

    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"agent_id": AGENT_ID, "topic_prefix": "farm_resilience"}
    )

    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"


async def test_an_agent_called_hub_is_not_mistaken_for_the_hub(
    hass: HomeAssistant, hub_entry: MockConfigEntry
) -> None:
    result = await hass.config_entries.flow.async_init(
        DOMAIN,
        context={"source": SOURCE_MQTT},
        data=service_info("farm_resilience/agent/hub/status", ONLINE),
    )

    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "confirm"


async def test_reconfiguring_an_agent_changes_its_prefix_and_an_agent_has_no_options(
    hass: HomeAssistant, agent_entry: MockConfigEntry
) -> None:
    assert not agent_entry.supports_options
    result = await agent_entry.start_reconfigure_flow(hass)
    assert result["step_id"] == "reconfigure_agent"

    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"topic_prefix": "farm/east"}
    )

    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reconfigure_successful"
    assert agent_entry.data == {"agent_id": AGENT_ID, "topic_prefix": "farm/east"}
    assert agent_entry.options == {}


@pytest.fixture
def agent_discovery(
    broker: Mosquitto, tmp_path: Path
) -> Iterator[list[tuple[str, dict[str, Any]]]]:
    """The HA MQTT discovery configs the agent farm-east publishes itself; cleared after."""
    config = agent_config(
        tmp_path,
        agent_id=AGENT_ID,
        mqtt_port=broker.port,
        pooler_dsn=None,
        direct_dsn="postgresql://farm@127.0.0.1:5432/postgres",
        queue="sensor_readings",
    )
    messages = discovery_messages(parse_config(config))
    yield messages
    clear_retained(broker.port, *(topic for topic, _ in messages))


async def announce(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    stand_in: StandInAgent,
    messages: list[tuple[str, dict[str, Any]]],
) -> None:
    """Publish the agent's discovery configs, retained, as the agent does when it connects.

    Then wait until HA's MQTT integration has made an entity of each.
    """
    for topic, config in messages:
        stand_in.publish(topic, json.dumps(config))
    await wait_until(
        hass, freezer, lambda: len(mqtt_entity_ids(hass)) == len(messages), "MQTT entities"
    )


def mqtt_entity_ids(hass: HomeAssistant) -> list[str]:
    """Return the entity ids HA's MQTT integration gave the agent's own entities."""
    return sorted(
        entity.entity_id
        for entity in er.async_get(hass).entities.values()
        if entity.platform == "mqtt" and entity.unique_id.startswith(f"farm_agent_{AGENT_ID}_")
    )


async def add_the_agent_by_confirming_its_discovery(
    hass: HomeAssistant, freezer: FrozenDateTimeFactory
) -> str:
    """Confirm the discovered agent as a user does; return its entry id."""
    await wait_until(hass, freezer, lambda: bool(discovered_flows(hass)), "discovery")
    flow_id = discovered_flows(hass)[0]["flow_id"]
    result = await hass.config_entries.flow.async_configure(flow_id, {})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    return str(result["result"].entry_id)


@pytest.mark.parametrize("first", ["agent_discovery", "integration"])
async def test_an_agent_announcing_itself_over_mqtt_discovery_is_one_device(
    hass: HomeAssistant,
    mqtt_entry: MockConfigEntry,
    stand_in: StandInAgent,
    agent_discovery: list[tuple[str, dict[str, Any]]],
    freezer: FrozenDateTimeFactory,
    first: str,
) -> None:
    stand_in.status(ONLINE)
    stand_in.health(HEALTHY["health"])
    if first == "agent_discovery":
        await announce(hass, freezer, stand_in, agent_discovery)
    entry_id = await add_the_agent_by_confirming_its_discovery(hass, freezer)
    await wait_until(
        hass, freezer, lambda: shown(hass, HEALTHY["expect"]) == HEALTHY["expect"], "values"
    )
    if first == "integration":
        await announce(hass, freezer, stand_in, agent_discovery)

    (device,) = dr.async_get(hass).devices.values()
    assert device.name == AGENT_ID
    assert device.config_entries == {mqtt_entry.entry_id, entry_id}
    entities = er.async_entries_for_device(er.async_get(hass), device.id)
    ours = sorted(entity.entity_id for entity in entities if entity.platform == DOMAIN)
    assert ours == AGENT_ENTITY_IDS
    assert sorted(e.entity_id for e in entities if e.platform == "mqtt") == mqtt_entity_ids(hass)
    # The agent's own entities keep the ids the device's former name gave them.
    assert "sensor.farm_agent_farm_east_queue_depth" in mqtt_entity_ids(hass)
    assert "sensor.farm_agent_farm_east_dead_letters" in mqtt_entity_ids(hass)
