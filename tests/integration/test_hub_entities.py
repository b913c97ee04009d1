"""The hub's entities: documented ids, and the degraded sensor's reasons and events."""

from __future__ import annotations

import pytest
from freezegun.api import FrozenDateTimeFactory
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import entity_registry as er
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_capture_events

from custom_components.farm_resilience.const import DOMAIN, EVENT_DEGRADED, EVENT_RECOVERED

from .sim import Behaviour, Farm
from .support import DEGRADED, advance, call


async def test_hub_entities_have_the_documented_entity_ids_on_one_device(
    hass: HomeAssistant, hub: MockConfigEntry
) -> None:
    entries = er.async_entries_for_config_entry(er.async_get(hass), hub.entry_id)

    assert sorted(entry.entity_id for entry in entries) == [
        "binary_sensor.farm_resilience_degraded",
        "sensor.farm_resilience_command_latency_p50",
        "sensor.farm_resilience_command_latency_p95",
        "sensor.farm_resilience_command_success_rate",
        "sensor.farm_resilience_commands_failed",
        "sensor.farm_resilience_device_availability",
        "sensor.farm_resilience_error_budget_remaining",
        "sensor.farm_resilience_stale_sensors",
        "sensor.farm_resilience_unavailable_devices",
    ]
    device = dr.async_get(hass).async_get_device(identifiers={(DOMAIN, hub.entry_id)})
    assert device is not None
    assert device.name == "Farm Resilience"
    assert {entry.device_id for entry in entries} == {device.id}
    assert hass.states.get(DEGRADED).attributes["device_class"] == "problem"
    assert hass.states.get(DEGRADED).attributes["reasons"] == []


async def toggle(hass: HomeAssistant, freezer: FrozenDateTimeFactory, entity_id: str) -> None:
    """Toggle an entity and let the command end (success or timeout)."""
    await call(hass, "switch.toggle", entity_id=entity_id)
    await advance(hass, freezer, 2.0)
    await advance(hass, freezer, 4.0)


@pytest.mark.parametrize("options", [{"min_samples": 5}])
async def test_failures_shown_below_target_degrade_with_plain_reasons_and_one_event_per_transition(
    hass: HomeAssistant, farm: Farm, hub: MockConfigEntry, freezer: FrozenDateTimeFactory
) -> None:
    degraded = async_capture_events(hass, EVENT_DEGRADED)
    recovered = async_capture_events(hass, EVENT_RECOVERED)
    for _ in range(5):
        await toggle(hass, freezer, "switch.pump_2")
    assert hass.states.get(DEGRADED).state == "off"

    farm.behaviour["switch.pump_2"] = Behaviour(drop_probability=1.0)
    for _ in range(3):
        await toggle(hass, freezer, "switch.pump_2")

    assert hass.states.get(DEGRADED).state == "on"
    assert hass.states.get(DEGRADED).attributes["reasons"] == [
        "All tracked entities: 3 of 8 commands failed (62.5 % < 99 %)",
        "switch.pump_2: 3 of 8 commands failed (62.5 % < 99 %)",
    ]
    # One failure in six could happen at 99 %; two in seven hardly (0.2 %), for all
    # entities at 95 % confidence; for the pump itself, at 99.9 %, it took three in eight.
    assert [event.data["reasons"] for event in degraded] == [
        ["All tracked entities: 2 of 7 commands failed (71.4 % < 99 %)"]
    ]
    offenders = hass.states.get("sensor.farm_resilience_commands_failed").attributes
    assert offenders["worst_offenders"] == [
        {"entity_id": "switch.pump_2", "commands": 8, "failed": 3, "success_rate": 62.5}
    ]

    await hass.services.async_call(DOMAIN, "reset_statistics", blocking=True)
    await hass.async_block_till_done()

    assert hass.states.get(DEGRADED).state == "off"
    assert hass.states.get("sensor.farm_resilience_command_success_rate").state == "unknown"
    assert len(degraded) == 1
    assert [event.data["reasons"] for event in recovered] == [[]]


@pytest.mark.parametrize("options", [{"min_samples": 5}])
async def test_too_few_commands_are_not_judged(
    hass: HomeAssistant, farm: Farm, hub: MockConfigEntry, freezer: FrozenDateTimeFactory
) -> None:
    farm.default = Behaviour(drop_probability=1.0)
    for _ in range(4):
        await toggle(hass, freezer, "switch.pump_1")

    assert hass.states.get("sensor.farm_resilience_command_success_rate").state == "0.0"
    assert hass.states.get(DEGRADED).state == "off"


async def test_one_failure_among_twenty_commands_is_no_evidence_and_does_not_degrade(
    hass: HomeAssistant, farm: Farm, hub: MockConfigEntry, freezer: FrozenDateTimeFactory
) -> None:
    farm.behaviour["switch.pump_1"] = Behaviour(drop_first=1)
    for _ in range(20):
        await toggle(hass, freezer, "switch.pump_1")

    assert hass.states.get("sensor.farm_resilience_command_success_rate").state == "95.0"
    assert hass.states.get(DEGRADED).state == "off"
    assert hass.states.get(DEGRADED).attributes["reasons"] == []


@pytest.mark.parametrize("options", [{"min_samples": 5, "latency_target": 1.0}])
async def test_slow_commands_degrade_on_latency_p95(
    hass: HomeAssistant, farm: Farm, hub: MockConfigEntry, freezer: FrozenDateTimeFactory
) -> None:
    farm.default = Behaviour(delay=lambda rng: 2.0)
    for _ in range(5):
        await toggle(hass, freezer, "switch.pump_1")

    (reason,) = hass.states.get(DEGRADED).attributes["reasons"]
    assert reason.startswith("Command latency p95 ")
    assert reason.endswith(" s > 1 s (5 successful commands)")
    assert float(reason.split()[3]) == pytest.approx(2.0, rel=0.05)
