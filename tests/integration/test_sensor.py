"""Sensors of the hub and of an agent, as Home Assistant registers and shows them."""

from __future__ import annotations

import pytest
from homeassistant.const import Platform
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
from pytest_homeassistant_custom_component.common import MockConfigEntry, snapshot_platform
from syrupy.assertion import SnapshotAssertion

from custom_components.farm_resilience.agent_link import AgentLink

from .support import ONLINE, WITH_TASKS, publish_health, publish_status


@pytest.fixture
def platforms() -> list[Platform]:
    """Only the sensors."""
    return [Platform.SENSOR]


async def test_hub_sensors(
    hass: HomeAssistant,
    hub_after_a_morning: MockConfigEntry,
    entity_registry: er.EntityRegistry,
    snapshot: SnapshotAssertion,
) -> None:
    await snapshot_platform(hass, entity_registry, snapshot, hub_after_a_morning.entry_id)


async def test_agent_sensors(
    hass: HomeAssistant,
    agent_with_problems: MockConfigEntry,
    entity_registry: er.EntityRegistry,
    snapshot: SnapshotAssertion,
) -> None:
    await snapshot_platform(hass, entity_registry, snapshot, agent_with_problems.entry_id)


async def test_agent_sensors_with_task_figures_and_objectives(
    hass: HomeAssistant,
    agent: AgentLink,
    agent_entry: MockConfigEntry,
    entity_registry: er.EntityRegistry,
    snapshot: SnapshotAssertion,
) -> None:
    publish_status(hass, ONLINE, replayed=True)
    publish_health(hass, WITH_TASKS["health"], replayed=True)
    await hass.async_block_till_done()

    await snapshot_platform(hass, entity_registry, snapshot, agent_entry.entry_id)
