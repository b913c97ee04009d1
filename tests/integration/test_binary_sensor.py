"""Binary sensors of the hub and of an agent, as Home Assistant registers and shows them."""

from __future__ import annotations

import pytest
from freezegun.api import FrozenDateTimeFactory
from homeassistant.const import Platform
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
from pytest_homeassistant_custom_component.common import MockConfigEntry, snapshot_platform
from syrupy.assertion import SnapshotAssertion

from custom_components.farm_resilience.agent_link import AgentLink

from .sim import Farm
from .support import ONLINE, WITH_PROBLEMS, a_morning_on_the_farm, publish_health, publish_status


@pytest.fixture
def platforms() -> list[Platform]:
    """Only the binary sensors."""
    return [Platform.BINARY_SENSOR]


async def test_hub_binary_sensor(
    hass: HomeAssistant,
    farm: Farm,
    hub: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
    entity_registry: er.EntityRegistry,
    snapshot: SnapshotAssertion,
) -> None:
    await a_morning_on_the_farm(hass, farm, freezer)

    await snapshot_platform(hass, entity_registry, snapshot, hub.entry_id)


async def test_agent_binary_sensors(
    hass: HomeAssistant,
    agent: AgentLink,
    agent_entry: MockConfigEntry,
    entity_registry: er.EntityRegistry,
    snapshot: SnapshotAssertion,
) -> None:
    publish_status(hass, ONLINE, replayed=True)
    publish_health(hass, WITH_PROBLEMS["health"], replayed=True)

    await snapshot_platform(hass, entity_registry, snapshot, agent_entry.entry_id)
