"""No diagnostics download shows a secret: the hub's, an agent's, nor that of HA's MQTT entry."""

from __future__ import annotations

import copy
import json

from freezegun.api import FrozenDateTimeFactory
from homeassistant.core import HomeAssistant
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.farm_resilience.agent_link import AgentLink
from tests.support.agent import TEST_SECRET

from .sim import Behaviour, Farm
from .support import (
    AGENT_ID,
    ONLINE,
    WITH_PROBLEMS,
    advance,
    download_diagnostics,
    publish_health,
    publish_status,
)

# What an agent may say about its backend: where it is, never how to log in.
POOLER = "postgresql://farm@db.example.internal:6543/postgres"
DIRECT = "postgresql://farm@10.0.0.5:5432/postgres?sslmode=require"
PROBLEMS = [f"pooler {POOLER}: connection refused", f"direct {DIRECT}: timeout after 2.0 s"]


async def test_diagnostics_of_hub_agent_and_mqtt_entries_never_show_the_mqtt_password(
    hass: HomeAssistant,
    farm: Farm,
    hub: MockConfigEntry,
    agent: AgentLink,
    agent_entry: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
    hass_client: ClientSessionGenerator,
) -> None:
    (mqtt_entry,) = hass.config_entries.async_entries("mqtt")
    assert mqtt_entry.data["password"] == TEST_SECRET  # HA's MQTT client logs in with it
    health = copy.deepcopy(WITH_PROBLEMS["health"])
    health["problems"] = PROBLEMS
    health["probes"][0]["detail"] = f"{POOLER} SELECT 1"
    publish_status(hass, ONLINE, replayed=True)
    publish_health(hass, health, replayed=True)
    assert agent.data.available
    farm.default = Behaviour(drop_probability=1.0)
    await hass.services.async_call("switch", "turn_on", {"entity_id": "switch.pump_1"})
    await advance(hass, freezer, 0.5)  # one command pending, for the hub's diagnostics

    hub_data = await download_diagnostics(hass, hass_client, hub)
    agent_data = await download_diagnostics(hass, hass_client, agent_entry)
    mqtt_data = await download_diagnostics(hass, hass_client, mqtt_entry)

    # The agent's words reach the diagnostics as they are: they hold no secret...
    assert agent_data["last_health"]["problems"] == PROBLEMS
    assert [f"agent {AGENT_ID}: {problem}" for problem in PROBLEMS] == [
        reason for reason in hub_data["reasons"] if reason.startswith("agent ")
    ]
    assert [command["entity_id"] for command in hub_data["pending_commands"]] == ["switch.pump_1"]
    # ...and the MQTT entry's credentials are redacted by HA's MQTT integration.
    credentials = {key: mqtt_data["mqtt_config"]["data"][key] for key in ("username", "password")}
    assert credentials == {"username": "**REDACTED**", "password": "**REDACTED**"}
    for data in (hub_data, agent_data, mqtt_data):
        assert TEST_SECRET not in json.dumps(data)
