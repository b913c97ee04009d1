"""What a command should do to an entity: pure functions from (domain, service, data, state).

The result expected is the one Home Assistant will really ask the device for:
brightness clamped to 0-255, attributes the entity does not support dropped,
temperatures in the entity's own unit and step. A call Home Assistant refuses
before it reaches the device is `REFUSED`: no command at all.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from homeassistant.const import STATE_OFF, STATE_ON, STATE_UNAVAILABLE, STATE_UNKNOWN
from homeassistant.core import State

from .rejections import is_refused
from .temperatures import TemperatureScale

type ServiceData = Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class AttributeTarget:
    """An attribute value a command should reach, with a tolerance for numbers."""

    name: str
    value: Any
    tolerance: float = 0.0

    def is_met(self, state: State) -> bool:
        """Return whether the state's attribute has reached the value."""
        actual = state.attributes.get(self.name)
        if isinstance(self.value, float) and isinstance(actual, int | float):
            return abs(actual - self.value) <= self.tolerance
        return bool(actual == self.value)


@dataclass(frozen=True, slots=True)
class Expectation:
    """The result a command should reach; `stops` marks a command that only cancels others."""

    states: frozenset[str] = frozenset()
    not_states: frozenset[str] = frozenset()
    attributes: tuple[AttributeTarget, ...] = ()
    stops: bool = False
    refused: bool = False

    def is_met(self, state: State) -> bool:
        """Return whether the state shows the command took effect."""
        if self.states and state.state not in self.states:
            return False
        if state.state in self.not_states:
            return False
        return all(target.is_met(state) for target in self.attributes)

    def describe(self) -> str:
        """Return the expectation in plain words (diagnostics)."""
        parts = [f"state in {sorted(self.states)}"] if self.states else []
        parts += [f"state not {sorted(self.not_states)}"] if self.not_states else []
        parts += [f"{t.name}={t.value}±{t.tolerance}" for t in self.attributes]
        if self.refused:
            return "refused by Home Assistant"
        return "stop" if self.stops else ", ".join(parts)


STOP = Expectation(stops=True)
REFUSED = Expectation(refused=True)
_ON = Expectation(states=frozenset({STATE_ON}))
_OFF = Expectation(states=frozenset({STATE_OFF}))
_NOT_OFF = Expectation(not_states=frozenset({STATE_OFF}))
_OPEN = Expectation(states=frozenset({"open"}))
_CLOSED = Expectation(states=frozenset({"closed"}))
# Brightness goes 0-255 and devices round percentages; 3 steps is about 1 %.
BRIGHTNESS_TOLERANCE = 3.0
# A position one step off is a cover that moved as told and stopped a hair short.
POSITION_TOLERANCE = 1.0


def _number(value: Any) -> float | None:
    """Return a service field as a number, or None when it is not one."""
    if isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _attribute(name: str, value: Any, tolerance: float = 0.0) -> Expectation | None:
    """Return an expectation on one numeric attribute, or None for a non-number."""
    if (number := _number(value)) is None:
        return None
    return Expectation(attributes=(AttributeTarget(name, number, tolerance),))


def _equals(name: str, value: Any) -> Expectation | None:
    """Return an expectation on one attribute taking exactly the value."""
    return None if value is None else Expectation(attributes=(AttributeTarget(name, value),))


def _state(value: Any) -> Expectation | None:
    """Return an expectation on the state taking the value."""
    return None if not isinstance(value, str) else Expectation(states=frozenset({value}))


def _toggle_on_off(state: State) -> Expectation | None:
    """Toggle: the opposite of the state at call time."""
    return {STATE_ON: _OFF, STATE_OFF: _ON}.get(state.state)


def _toggle_open_closed(state: State) -> Expectation | None:
    """Toggle of a cover or valve; one that is moving gets a stop, which verifies nothing."""
    if state.state in ("opening", "closing"):
        return STOP
    return {"open": _CLOSED, "closed": _OPEN}.get(state.state)


# Colour modes with a brightness (Home Assistant drops brightness for the others).
_DIMMABLE_MODES = frozenset(
    {"brightness", "color_temp", "hs", "xy", "rgb", "rgbw", "rgbww", "white"}
)


def _clamp(value: float, low: float, high: float) -> float:
    """Return the value within [low, high]."""
    return max(low, min(high, value))


def _light_brightness(data: ServiceData, state: State) -> float | None:
    """Return the brightness light.turn_on will ask for, as Home Assistant computes it.

    It clamps brightness to 0-255 and steps from the current brightness (0 when off).
    """
    if (brightness := _number(data.get("brightness"))) is not None:
        return _clamp(int(brightness), 0, 255)
    if (pct := _number(data.get("brightness_pct"))) is not None:
        return round(255 * _clamp(pct, 0, 100) / 100)
    step = _number(data.get("brightness_step"))
    if (step_pct := _number(data.get("brightness_step_pct"))) is not None:
        step = round(_clamp(step_pct, -100, 100) / 100 * 255)
    if step is None:
        return None
    current = _number(state.attributes.get("brightness")) if state.state == STATE_ON else None
    return _clamp((current or 0) + _clamp(int(step), -255, 255), 0, 255)


def _light_on(data: ServiceData, state: State) -> Expectation | None:
    """light.turn_on: on, at the brightness Home Assistant asks for when the light dims."""
    brightness = _light_brightness(data, state)
    if brightness is None:
        return _ON
    if brightness <= 0:
        return _OFF  # Home Assistant turns the light off instead
    modes = state.attributes.get("supported_color_modes")
    if modes is not None and not _DIMMABLE_MODES.intersection(modes):
        return _ON  # an on/off light: Home Assistant drops the brightness
    target = AttributeTarget("brightness", float(brightness), BRIGHTNESS_TOLERANCE)
    return Expectation(states=frozenset({STATE_ON}), attributes=(target,))


def _fan_percentage(data: ServiceData, state: State) -> Expectation | None:
    """fan.set_percentage (or turn_on with one): within a speed step of the asked percentage."""
    if "percentage" not in data:
        return _ON
    if (percentage := _number(data["percentage"])) is None:
        return None
    if percentage <= 0:
        return _OFF
    step = _number(state.attributes.get("percentage_step")) or 1.0
    return Expectation(
        states=frozenset({STATE_ON}),
        attributes=(AttributeTarget("percentage", percentage, step),),
    )


def _temperature(
    data: ServiceData, state: State, mode_field: str, scale: TemperatureScale | None = None
) -> Expectation | None:
    """set_temperature of climate or water heater: the targets as the entity will show them.

    With the entity's scale known, a value out of its limits is refused by Home
    Assistant and a shown value within the device's step (plus display rounding)
    is the value asked; without it, within half the step the state shows.
    """
    fallback_step = _number(state.attributes.get("target_temp_step")) or 1.0
    targets = []
    for field in ("temperature", "target_temp_high", "target_temp_low"):
        if field in data:
            if (value := _number(data[field])) is None:
                return None
            if scale is not None and not scale.accepts(value):
                return REFUSED
            tolerance = scale.tolerance() if scale is not None else fallback_step / 2
            targets.append(AttributeTarget(field, value, tolerance))
    low, high = _number(data.get("target_temp_low")), _number(data.get("target_temp_high"))
    if low is not None and high is not None and low > high:
        return REFUSED
    mode = data.get(mode_field)
    if not targets and mode is None:
        return None
    states = frozenset({mode}) if isinstance(mode, str) else frozenset()
    return Expectation(states=states, attributes=tuple(targets))


def _away_mode(data: ServiceData) -> Expectation | None:
    """water_heater.set_away_mode: the away_mode attribute reads on or off."""
    value = data.get("away_mode")
    return None if not isinstance(value, bool) else _equals("away_mode", "on" if value else "off")


type Rule = Callable[[ServiceData, State], Expectation | None]


def _fixed(expectation: Expectation) -> Rule:
    """A rule whose expectation does not depend on the call."""
    return lambda data, state: expectation


_ON_OFF: dict[str, Rule] = {
    "turn_on": _fixed(_ON),
    "turn_off": _fixed(_OFF),
    "toggle": lambda data, state: _toggle_on_off(state),
}
_COVER_LIKE: dict[str, Rule] = {
    "toggle": lambda data, state: _toggle_open_closed(state),
}

RULES: dict[str, dict[str, Rule]] = {
    "switch": _ON_OFF,
    "siren": _ON_OFF,
    "light": {**_ON_OFF, "turn_on": _light_on},
    "fan": {
        **_ON_OFF,
        "turn_on": _fan_percentage,
        "set_percentage": _fan_percentage,
        "set_preset_mode": lambda data, state: _equals("preset_mode", data.get("preset_mode")),
        "oscillate": lambda data, state: _equals("oscillating", data.get("oscillating")),
        "set_direction": lambda data, state: _equals("direction", data.get("direction")),
    },
    "humidifier": {
        **_ON_OFF,
        "set_humidity": lambda data, state: _attribute("humidity", data.get("humidity")),
        "set_mode": lambda data, state: _equals("mode", data.get("mode")),
    },
    "cover": {
        **_COVER_LIKE,
        "open_cover": _fixed(_OPEN),
        "close_cover": _fixed(_CLOSED),
        "stop_cover": _fixed(STOP),
        "stop_cover_tilt": _fixed(STOP),
        "set_cover_position": lambda data, state: _attribute(
            "current_position", data.get("position"), POSITION_TOLERANCE
        ),
        "open_cover_tilt": _fixed(
            Expectation(
                attributes=(AttributeTarget("current_tilt_position", 100.0, POSITION_TOLERANCE),)
            )
        ),
        "close_cover_tilt": _fixed(
            Expectation(
                attributes=(AttributeTarget("current_tilt_position", 0.0, POSITION_TOLERANCE),)
            )
        ),
        "set_cover_tilt_position": lambda data, state: _attribute(
            "current_tilt_position", data.get("tilt_position"), POSITION_TOLERANCE
        ),
    },
    "valve": {
        **_COVER_LIKE,
        "open_valve": _fixed(_OPEN),
        "close_valve": _fixed(_CLOSED),
        "stop_valve": _fixed(STOP),
        "set_valve_position": lambda data, state: _attribute(
            "current_position", data.get("position"), POSITION_TOLERANCE
        ),
    },
    "lock": {
        "lock": _fixed(Expectation(states=frozenset({"locked"}))),
        "unlock": _fixed(Expectation(states=frozenset({"unlocked"}))),
        "open": _fixed(_OPEN),
    },
    "climate": {
        "turn_on": _fixed(_NOT_OFF),
        "turn_off": _fixed(_OFF),
        "toggle": lambda data, state: _OFF if state.state != STATE_OFF else _NOT_OFF,
        "set_hvac_mode": lambda data, state: _state(data.get("hvac_mode")),
        "set_temperature": lambda data, state: _temperature(data, state, "hvac_mode"),
        "set_fan_mode": lambda data, state: _equals("fan_mode", data.get("fan_mode")),
        "set_preset_mode": lambda data, state: _equals("preset_mode", data.get("preset_mode")),
        "set_swing_mode": lambda data, state: _equals("swing_mode", data.get("swing_mode")),
        "set_humidity": lambda data, state: _attribute("humidity", data.get("humidity")),
    },
    "water_heater": {
        "turn_on": _fixed(_NOT_OFF),
        "turn_off": _fixed(_OFF),
        "set_temperature": lambda data, state: _temperature(data, state, "operation_mode"),
        "set_operation_mode": lambda data, state: _state(data.get("operation_mode")),
        "set_away_mode": lambda data, state: _away_mode(data),
    },
}


def is_understood(domain: str, service: str) -> bool:
    """Return whether the tracker knows what this action should do."""
    return service in RULES.get(domain, {})


_MODE_FIELDS = {"climate": "hvac_mode", "water_heater": "operation_mode"}
# toggle of a cover or valve: the explicit action for each end position.
_TOGGLE_ENDS = {
    "cover": {"open": "close_cover", "closed": "open_cover"},
    "valve": {"open": "close_valve", "closed": "open_valve"},
}
_LIGHT_OFF_FIELDS = frozenset({"transition", "flash"})


def expect(
    domain: str,
    service: str,
    data: ServiceData,
    state: State,
    scale: TemperatureScale | None = None,
) -> Expectation | None:
    """Return what the action should do to the entity in `state`, None when not understood.

    `scale` is the entity's temperature scale, for set_temperature.
    """
    if (rule := RULES.get(domain, {}).get(service)) is None:
        return None
    if is_refused(domain, service, data, state):
        return REFUSED
    if service == "set_temperature" and domain in _MODE_FIELDS:
        return _temperature(data, state, _MODE_FIELDS[domain], scale)
    return rule(data, state)


def explicit_toggle(domain: str, state: State) -> str | None:
    """Return the action a toggle of the entity in `state` stands for, None without an opposite.

    A cover or valve on its way (opening, closing) and an entity whose state is
    unknown or unavailable have no opposite: toggling them could stop or reverse
    what another command started.
    """
    if state.state in (STATE_UNKNOWN, STATE_UNAVAILABLE):
        return None
    if domain in _TOGGLE_ENDS:
        return _TOGGLE_ENDS[domain].get(state.state)
    if domain == "climate":
        return "turn_on" if state.state == STATE_OFF else "turn_off"
    return {STATE_ON: "turn_off", STATE_OFF: "turn_on"}.get(state.state)


def explicit_data(domain: str, service: str, data: ServiceData) -> dict[str, Any]:
    """Return a toggle's data as its explicit action takes it.

    light.turn_off takes only transition and flash of light.toggle's fields.
    """
    if domain == "light" and service == "turn_off":
        return {key: value for key, value in data.items() if key in _LIGHT_OFF_FIELDS}
    return dict(data)
