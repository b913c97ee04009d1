"""Binary sensors of the hub and of an agent, as Home Assistant registers and shows them."""

from __future__ import annotations

import pytest
from homeassistant.const import Platform
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
from pytest_homeassistant_custom_component.common import MockConfigEntry, snapshot_platform
from syrupy.assertion import SnapshotAssertion


@pytest.fixture
def platforms() -> list[Platform]:
    """Only the binary sensors."""
    return [Platform.BINARY_SENSOR]


async def test_hub_binary_sensor(
    hass: HomeAssistant,
    hub_after_a_morning: MockConfigEntry,
    entity_registry: er.EntityRegistry,
    snapshot: SnapshotAssertion,
) -> None:
    await snapshot_platform(hass, entity_registry, snapshot, hub_after_a_morning.entry_id)


async def test_agent_binary_sensors(
    hass: HomeAssistant,
    agent_with_problems: MockConfigEntry,
    entity_registry: er.EntityRegistry,
    snapshot: SnapshotAssertion,
) -> None:
    await snapshot_platform(hass, entity_registry, snapshot, agent_with_problems.entry_id)
