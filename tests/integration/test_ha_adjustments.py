"""Commands that did what Home Assistant told them: clamped, dropped, converted or refused calls."""

from __future__ import annotations

from typing import Any

import pytest
from freezegun.api import FrozenDateTimeFactory
from homeassistant.const import Platform
from homeassistant.core import Event, HomeAssistant
from homeassistant.exceptions import ServiceNotSupported, ServiceValidationError
from homeassistant.util.unit_system import US_CUSTOMARY_SYSTEM
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.farm_resilience.const import DOMAIN

from .sim import Behaviour, Farm, Layout
from .support import FAILED, advance, call, outcomes


@pytest.fixture
def layout() -> Layout:
    """A dimmable grow light, a plain barn light, a field valve and a brooder thermostat."""
    return {
        "Greenhouse": [(Platform.LIGHT, "grow_light", "Grow light")],
        "Barn": [
            (Platform.LIGHT, "barn_light", "Barn light"),
            (Platform.CLIMATE, "brooder", "Brooder"),
        ],
        "Field valves": [(Platform.VALVE, "field_1", "Field 1")],
    }


async def turn_on(hass: HomeAssistant, entity_id: str, **data: Any) -> None:
    """Call light.turn_on as a dashboard would."""
    await call(hass, "light.turn_on", entity_id=entity_id, **data)


@pytest.mark.parametrize(
    ("entity_id", "data", "brightness"),
    [
        ("light.grow_light", {"brightness": 300}, 255),  # clamped by Home Assistant
        ("light.barn_light", {"brightness_pct": 50}, None),  # an on/off light: dropped
    ],
    ids=["brightness_above_255", "brightness_on_an_on_off_light"],
)
async def test_light_doing_what_home_assistant_asked_is_a_success(
    hass: HomeAssistant,
    command_events: list[Event[Any]],
    farm: Farm,
    hub: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
    entity_id: str,
    data: dict[str, Any],
    brightness: int | None,
) -> None:
    farm.default = Behaviour(delay=lambda rng: 0.5)

    await turn_on(hass, entity_id, **data)
    await advance(hass, freezer, 0.5)
    await advance(hass, freezer, 5.0)

    assert hass.states.get(entity_id).attributes.get("brightness") == brightness
    assert outcomes(command_events) == [(entity_id, "success")]


async def test_brightness_step_is_counted_from_the_current_brightness(
    hass: HomeAssistant,
    command_events: list[Event[Any]],
    farm: Farm,
    hub: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
) -> None:
    await turn_on(hass, "light.grow_light", brightness=100)
    await advance(hass, freezer, 0.5)

    await turn_on(hass, "light.grow_light", brightness_step_pct=20)  # 100 + 51
    await advance(hass, freezer, 0.5)

    assert hass.states.get("light.grow_light").attributes["brightness"] == 151
    assert outcomes(command_events) == [("light.grow_light", "success")] * 2


async def test_brightness_step_down_on_a_light_that_is_off_is_no_failure(
    hass: HomeAssistant,
    command_events: list[Event[Any]],
    farm: Farm,
    hub: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
) -> None:

    # Home Assistant steps from 0, reaches 0 and turns the light off: it already is.
    await turn_on(hass, "light.grow_light", brightness_step_pct=-10)
    await advance(hass, freezer, 5.0)

    assert hass.states.get("light.grow_light").state == "off"
    assert outcomes(command_events) == [("light.grow_light", "noop")]
    assert hass.states.get(FAILED).state == "0"


@pytest.mark.parametrize(
    ("action", "data", "error"),
    [
        (
            "climate.set_temperature",
            {"entity_id": "climate.brooder", "temperature": 40},
            ServiceValidationError,
        ),
        (
            "valve.set_valve_position",
            {"entity_id": "valve.field_1", "position": 30},
            ServiceNotSupported,
        ),
    ],
    ids=["temperature_out_of_range", "position_on_a_valve_without_positions"],
)
async def test_call_home_assistant_refuses_is_no_command(
    hass: HomeAssistant,
    command_events: list[Event[Any]],
    farm: Farm,
    hub: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
    action: str,
    data: dict[str, Any],
    error: type[Exception],
) -> None:
    domain, service = action.split(".")

    with pytest.raises(error):
        await hass.services.async_call(domain, service, data, blocking=True)
    await advance(hass, freezer, 10.0)

    assert farm.records == []  # nothing reached the device
    assert command_events == []
    assert hass.states.get(FAILED).state == "0"


async def test_send_command_passes_on_home_assistant_s_own_refusal(
    hass: HomeAssistant, farm: Farm, hub: MockConfigEntry
) -> None:
    with pytest.raises(ServiceValidationError) as raised:
        await hass.services.async_call(
            DOMAIN,
            "send_command",
            {
                "entity_id": "climate.brooder",
                "action": "climate.set_temperature",
                "data": {"temperature": 40},
            },
            blocking=True,
        )

    assert raised.value.translation_domain == "climate"
    assert raised.value.translation_key == "temp_out_of_range"
    assert farm.records == []


@pytest.fixture
def fahrenheit(hass: HomeAssistant) -> None:
    """Home Assistant set to °F; the brooder works in whole °C."""
    hass.config.units = US_CUSTOMARY_SYSTEM


@pytest.mark.parametrize(("asked", "shown"), [(71, 72), (65, 64), (95, 95)])
async def test_whole_degree_celsius_thermostat_driven_in_fahrenheit_succeeds(
    hass: HomeAssistant,
    command_events: list[Event[Any]],
    fahrenheit: None,
    farm: Farm,
    hub: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
    asked: float,
    shown: float,
) -> None:
    farm.default = Behaviour(delay=lambda rng: 1.0)

    await call(hass, "climate.set_temperature", entity_id="climate.brooder", temperature=asked)
    await advance(hass, freezer, 1.0)

    assert hass.states.get("climate.brooder").attributes["temperature"] == shown
    assert [(e.data["outcome"], e.data["latency_s"]) for e in command_events] == [("success", 1.0)]
