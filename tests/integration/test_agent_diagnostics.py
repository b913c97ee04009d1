"""Diagnostics of an agent entry: topics, status, availability, last health (redacted)."""

from __future__ import annotations

import copy

import pytest
from freezegun.api import FrozenDateTimeFactory
from homeassistant.core import HomeAssistant
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator
from syrupy.assertion import SnapshotAssertion
from syrupy.filters import props

from .conftest import download_diagnostics
from .mqtt_support import (
    ACCEPTED,
    ONLINE,
    REJECTED,
    StandInAgent,
    take_integration_warnings,
    wait_until,
)

# Ages depend on how many 50 ms rounds the broker took; the test checks them apart.
AGES = ("status_age_s", "health_age_s", "for_s")


async def test_agent_diagnostics_show_status_and_last_health_with_secrets_redacted(
    hass: HomeAssistant,
    mqtt_entry: MockConfigEntry,
    stand_in: StandInAgent,
    agent_entry: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
    caplog: pytest.LogCaptureFixture,
    hass_client: ClientSessionGenerator,
    snapshot: SnapshotAssertion,
) -> None:
    health = copy.deepcopy(ACCEPTED[1]["health"])
    # An agent should never publish a secret; if one slips into a probe, it is redacted.
    health["probes"][0]["url"] = "https://farm:s3cret@api.example/health"
    stand_in.status(ONLINE)
    stand_in.health(health)
    assert await hass.config_entries.async_setup(agent_entry.entry_id)
    link = agent_entry.runtime_data
    await wait_until(hass, freezer, lambda: link.available and link.health is not None, "health")
    stand_in.health(REJECTED[1]["payload"])
    await wait_until(hass, freezer, lambda: link.rejected == 1, "a rejected payload")
    assert len(take_integration_warnings(caplog)) == 1

    diagnostics = await download_diagnostics(hass, hass_client, agent_entry)

    assert diagnostics == snapshot(exclude=props(*AGES))
    assert "s3cret" not in str(diagnostics)
    assert 0 <= diagnostics["status_age_s"] < 5
    assert 0 <= diagnostics["health_age_s"] < 5
    assert diagnostics["unavailable"] is None
