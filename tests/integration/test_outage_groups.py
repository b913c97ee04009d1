"""Groups and wrappers are no devices: only their members count towards outages."""

from __future__ import annotations

from freezegun.api import FrozenDateTimeFactory
from homeassistant.core import HomeAssistant
from homeassistant.helpers import issue_registry as ir
from homeassistant.setup import async_setup_component
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.farm_resilience.const import DOMAIN

from .sim import Farm
from .support import (
    UNAVAILABLE_DEVICES,
    add_group,
    add_switch_as_x,
    advance,
    pump_house_issue,
    take_down_pump_house,
)

GATE_LINK = "binary_sensor.gate_link"


def issues_of_the_hub(hass: HomeAssistant) -> list[str]:
    """Return the ids of the hub's device repair issues."""
    return sorted(
        issue_id
        for (domain, issue_id), issue in ir.async_get(hass).issues.items()
        if domain == DOMAIN and issue.active and issue_id.startswith("device_down_")
    )


async def test_a_group_of_devices_all_down_is_no_extra_device_and_gets_no_issue(
    hass: HomeAssistant, farm: Farm, hub: MockConfigEntry, freezer: FrozenDateTimeFactory
) -> None:
    await add_group(hass, "switch", "All pumps", ["switch.pump_1", "switch.pump_2"])
    assert hass.states.get("switch.all_pumps") is not None
    assert "switch.all_pumps" in hub.runtime_data.tracker.followed

    take_down_pump_house(farm)
    await advance(hass, freezer, 120.0)

    assert hass.states.get("switch.all_pumps").state == "unavailable"
    assert hass.states.get(UNAVAILABLE_DEVICES).attributes["devices"] == ["Pump house"]
    assert issues_of_the_hub(hass) == [pump_house_issue(hass).issue_id]


async def test_a_switch_shown_as_a_light_is_one_device_not_two(
    hass: HomeAssistant, farm: Farm, hub: MockConfigEntry, freezer: FrozenDateTimeFactory
) -> None:
    hass.states.async_set(GATE_LINK, "on")
    assert await async_setup_component(hass, "homeassistant", {})  # switch_as_x needs it
    assert await async_setup_component(
        hass,
        "template",
        {
            "template": [
                {
                    "switch": [
                        {
                            "name": "Gate",
                            "unique_id": "gate",
                            "state": "{{ true }}",
                            "availability": f"{{{{ is_state('{GATE_LINK}', 'on') }}}}",
                            "turn_on": [],
                            "turn_off": [],
                        }
                    ]
                }
            ]
        },
    )
    await hass.async_block_till_done()
    await add_switch_as_x(hass, "switch.gate", "light")
    assert {"switch.gate", "light.gate"} <= hub.runtime_data.tracker.followed

    hass.states.async_set(GATE_LINK, "off")  # the gate controller drops off the network
    await advance(hass, freezer, 1.0)  # the template renders its availability
    assert hass.states.get("switch.gate").state == "unavailable"
    assert hass.states.get("light.gate").state == "unavailable"
    await advance(hass, freezer, 120.0)

    assert hass.states.get(UNAVAILABLE_DEVICES).attributes["devices"] == ["switch.gate"]
    assert issues_of_the_hub(hass) == ["device_down_switch.gate"]
