"""Diagnostics of an agent entry: topics, status, availability, last health (redacted)."""

from __future__ import annotations

import copy

import pytest
from freezegun.api import FrozenDateTimeFactory
from homeassistant.core import HomeAssistant
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator
from syrupy.assertion import SnapshotAssertion

from custom_components.farm_resilience.agent_link import AgentLink

from .support import (
    ONLINE,
    REJECTED,
    WITH_PROBLEMS,
    advance,
    download_diagnostics,
    publish_health,
    publish_status,
    take_integration_warnings,
)


async def test_agent_diagnostics_show_status_and_last_health_with_secrets_redacted(
    hass: HomeAssistant,
    agent: AgentLink,
    agent_entry: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
    caplog: pytest.LogCaptureFixture,
    hass_client: ClientSessionGenerator,
    snapshot: SnapshotAssertion,
) -> None:
    health = copy.deepcopy(WITH_PROBLEMS["health"])
    # An agent should never publish a secret; if one slips into a probe, it is redacted.
    health["probes"][0]["url"] = "https://farm:s3cret@api.example/health"
    publish_status(hass, ONLINE, replayed=True)
    await advance(hass, freezer, 2.0)
    publish_health(hass, health, replayed=True)
    publish_health(hass, REJECTED[1]["payload"])
    assert len(take_integration_warnings(caplog)) == 1
    await advance(hass, freezer, 1.5)

    diagnostics = await download_diagnostics(hass, hass_client, agent_entry)

    assert diagnostics == snapshot
    assert "s3cret" not in str(diagnostics)
