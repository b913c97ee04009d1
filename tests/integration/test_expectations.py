"""What each action should do to an entity: the pure expectation rules."""

from __future__ import annotations

from typing import Any

import pytest
from homeassistant.core import State

from custom_components.farm_resilience.expectations import expect, is_understood


def state(entity_id: str, value: str, **attributes: Any) -> State:
    """Return a State as the state machine would hold it."""
    return State(entity_id, value, attributes)


@pytest.mark.parametrize(
    ("action", "data", "before", "after", "met"),
    [
        ("lock.lock", {}, state("lock.gate", "unlocked"), state("lock.gate", "locked"), True),
        ("lock.lock", {}, state("lock.gate", "unlocked"), state("lock.gate", "locking"), False),
        ("lock.unlock", {}, state("lock.gate", "locked"), state("lock.gate", "unlocked"), True),
        ("lock.open", {}, state("lock.gate", "locked"), state("lock.gate", "open"), True),
        (
            "climate.set_temperature",
            {"temperature": 21.5},
            state("climate.barn", "heat", temperature=18, target_temp_step=0.5),
            state("climate.barn", "heat", temperature=21.5, target_temp_step=0.5),
            True,
        ),
        (
            "climate.set_temperature",
            {"temperature": 21.5},
            state("climate.barn", "heat", temperature=18, target_temp_step=0.5),
            state("climate.barn", "heat", temperature=22, target_temp_step=0.5),
            False,
        ),
        (
            "climate.set_temperature",
            {"target_temp_low": 18, "target_temp_high": 24, "hvac_mode": "heat_cool"},
            state("climate.barn", "off"),
            state("climate.barn", "heat_cool", target_temp_low=18, target_temp_high=24),
            True,
        ),
        (
            "climate.set_hvac_mode",
            {"hvac_mode": "cool"},
            state("climate.barn", "heat"),
            state("climate.barn", "cool"),
            True,
        ),
        ("climate.turn_on", {}, state("climate.barn", "off"), state("climate.barn", "heat"), True),
        (
            "fan.set_percentage",
            {"percentage": 50},
            state("fan.barn", "off", percentage=0, percentage_step=33.33),
            state("fan.barn", "on", percentage=66.67, percentage_step=33.33),
            True,
        ),
        (
            "fan.set_percentage",
            {"percentage": 0},
            state("fan.barn", "on", percentage=50),
            state("fan.barn", "off", percentage=0),
            True,
        ),
        (
            "valve.set_valve_position",
            {"position": 30},
            state("valve.tank", "closed", current_position=0),
            state("valve.tank", "opening", current_position=10),
            False,
        ),
        (
            "humidifier.set_humidity",
            {"humidity": 60},
            state("humidifier.greenhouse", "on", humidity=40),
            state("humidifier.greenhouse", "on", humidity=60),
            True,
        ),
        (
            "water_heater.set_operation_mode",
            {"operation_mode": "eco"},
            state("water_heater.dairy", "electric"),
            state("water_heater.dairy", "eco"),
            True,
        ),
        (
            "water_heater.set_away_mode",
            {"away_mode": True},
            state("water_heater.dairy", "eco", away_mode="off"),
            state("water_heater.dairy", "eco", away_mode="on"),
            True,
        ),
        ("siren.toggle", {}, state("siren.yard", "off"), state("siren.yard", "on"), True),
        (
            "light.turn_on",
            {"brightness_pct": 0},
            state("light.barn", "on", brightness=255),
            state("light.barn", "off"),
            True,
        ),
    ],
)
def test_expectation_is_met_only_by_the_asked_result(
    action: str, data: dict[str, Any], before: State, after: State, met: bool
) -> None:
    domain, service = action.split(".")
    expectation = expect(domain, service, data, before)

    assert expectation is not None
    assert not expectation.is_met(before)
    assert expectation.is_met(after) is met


@pytest.mark.parametrize(
    ("action", "data", "before"),
    [
        ("switch.toggle", {}, state("switch.pump", "unknown")),
        ("cover.set_cover_position", {"position": "half"}, state("cover.vent", "open")),
        ("climate.set_temperature", {}, state("climate.barn", "heat")),
        ("fan.set_preset_mode", {}, state("fan.barn", "on")),
    ],
)
def test_calls_without_a_knowable_result_are_not_guessed(
    action: str, data: dict[str, Any], before: State
) -> None:
    domain, service = action.split(".")

    assert expect(domain, service, data, before) is None


def test_unknown_services_are_not_understood() -> None:
    assert is_understood("valve", "close_valve")
    assert not is_understood("switch", "calibrate")
    assert not is_understood("sensor", "turn_on")


def test_toggle_of_a_moving_cover_is_a_stop() -> None:
    expectation = expect("cover", "toggle", {}, state("cover.vent", "opening"))

    assert expectation is not None
    assert expectation.stops
