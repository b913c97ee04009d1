"""Device outages: repair issue and degraded past outage_alert, nothing during start-up."""

from __future__ import annotations

import pytest
from freezegun.api import FrozenDateTimeFactory
from homeassistant.const import EVENT_HOMEASSISTANT_STARTED
from homeassistant.core import CoreState, HomeAssistant
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import issue_registry as ir
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_capture_events

from custom_components.farm_resilience.const import DOMAIN, EVENT_DEGRADED, EVENT_RECOVERED

from .conftest import advance
from .sim import SIM_DOMAIN, Farm

DEGRADED = "binary_sensor.farm_resilience_degraded"
UNAVAILABLE_DEVICES = "sensor.farm_resilience_unavailable_devices"


def pump_house_issue(hass: HomeAssistant) -> ir.IssueEntry | None:
    """Return the repair issue of the pump house, if raised."""
    device = dr.async_get(hass).async_get_device(identifiers={(SIM_DOMAIN, "Pump house")})
    assert device is not None
    return ir.async_get(hass).async_get_issue(DOMAIN, f"device_down_{device.id}")


def take_down_pump_house(farm: Farm, available: bool = False) -> None:
    """Make both pumps of the pump house unavailable (or available again)."""
    farm.entities["switch.pump_1"].set_available(available)
    farm.entities["switch.pump_2"].set_available(available)


async def test_device_down_past_outage_alert_raises_repair_issue_and_degraded(
    hass: HomeAssistant, farm: Farm, hub: MockConfigEntry, freezer: FrozenDateTimeFactory
) -> None:
    events = async_capture_events(hass, EVENT_DEGRADED)
    take_down_pump_house(farm)
    await advance(hass, freezer, 59.0)
    assert pump_house_issue(hass) is None
    assert hass.states.get(DEGRADED).state == "off"

    await advance(hass, freezer, 1.0)

    issue = pump_house_issue(hass)
    assert issue is not None
    assert issue.translation_key == "device_down"
    assert issue.translation_placeholders == {"device": "Pump house", "seconds": "60"}
    reasons = ["Pump house: down for more than 60 s (all 2 tracked entities unavailable)"]
    assert hass.states.get(DEGRADED).state == "on"
    assert hass.states.get(DEGRADED).attributes["reasons"] == reasons
    assert hass.states.get(UNAVAILABLE_DEVICES).state == "1"
    assert hass.states.get(UNAVAILABLE_DEVICES).attributes["devices"] == ["Pump house"]
    assert [event.data["reasons"] for event in events] == [reasons]


async def test_recovery_clears_repair_issue_and_degraded(
    hass: HomeAssistant, farm: Farm, hub: MockConfigEntry, freezer: FrozenDateTimeFactory
) -> None:
    recovered = async_capture_events(hass, EVENT_RECOVERED)
    take_down_pump_house(farm)
    await advance(hass, freezer, 61.0)
    assert pump_house_issue(hass) is not None

    farm.entities["switch.pump_1"].set_available(True)
    await hass.async_block_till_done()

    assert pump_house_issue(hass) is None
    assert hass.states.get(DEGRADED).state == "off"
    assert hass.states.get(DEGRADED).attributes["reasons"] == []
    assert hass.states.get(UNAVAILABLE_DEVICES).state == "0"
    assert [event.data["reasons"] for event in recovered] == [[]]


async def test_device_with_one_entity_left_available_is_not_down(
    hass: HomeAssistant, farm: Farm, hub: MockConfigEntry, freezer: FrozenDateTimeFactory
) -> None:
    farm.entities["switch.pump_1"].set_available(False)
    await advance(hass, freezer, 600.0)

    assert pump_house_issue(hass) is None
    assert hass.states.get(DEGRADED).state == "off"


async def test_unavailable_during_start_up_raises_no_alarm(
    hass: HomeAssistant, farm: Farm, hub_entry: MockConfigEntry, freezer: FrozenDateTimeFactory
) -> None:
    hass.set_state(CoreState.starting)
    take_down_pump_house(farm)
    assert await hass.config_entries.async_setup(hub_entry.entry_id)
    await advance(hass, freezer, 600.0)  # a slow start-up: no alarm however long it takes
    assert pump_house_issue(hass) is None

    hass.set_state(CoreState.running)
    hass.bus.async_fire(EVENT_HOMEASSISTANT_STARTED)
    await advance(hass, freezer, 30.0)
    take_down_pump_house(farm, available=True)  # the integration came up after start
    await advance(hass, freezer, 600.0)

    assert pump_house_issue(hass) is None
    assert hass.states.get(DEGRADED).state == "off"


@pytest.mark.parametrize("options", [{"outage_alert": 120}])
async def test_device_down_since_start_up_alarms_outage_alert_after_start(
    hass: HomeAssistant, farm: Farm, hub_entry: MockConfigEntry, freezer: FrozenDateTimeFactory
) -> None:
    hass.set_state(CoreState.starting)
    take_down_pump_house(farm)
    assert await hass.config_entries.async_setup(hub_entry.entry_id)
    await advance(hass, freezer, 300.0)
    hass.set_state(CoreState.running)
    hass.bus.async_fire(EVENT_HOMEASSISTANT_STARTED)

    await advance(hass, freezer, 119.0)
    assert pump_house_issue(hass) is None
    await advance(hass, freezer, 1.0)
    assert pump_house_issue(hass) is not None
