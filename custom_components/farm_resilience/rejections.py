"""Calls Home Assistant refuses before they reach the device: no device failure, never counted.

Home Assistant fires `call_service` before it checks the entity: an action the
entity does not support (ServiceNotSupported) or a mode it does not offer
(ServiceValidationError) is seen by the tracker, yet nothing is sent.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from homeassistant.components.climate.const import ClimateEntityFeature
from homeassistant.components.cover import CoverEntityFeature
from homeassistant.components.fan import FanEntityFeature
from homeassistant.components.lock import LockEntityFeature
from homeassistant.components.siren.const import SirenEntityFeature
from homeassistant.components.valve import ValveEntityFeature
from homeassistant.components.water_heater import WaterHeaterEntityFeature
from homeassistant.const import ATTR_SUPPORTED_FEATURES
from homeassistant.core import State

_Climate = ClimateEntityFeature
_Cover = CoverEntityFeature
_Fan = FanEntityFeature
_Valve = ValveEntityFeature

# (domain, service) -> feature sets, any one of which the entity must support in full:
# the lists each domain registers its entity services with.
REQUIRED_FEATURES: dict[tuple[str, str], tuple[int, ...]] = {
    ("valve", "open_valve"): (_Valve.OPEN,),
    ("valve", "close_valve"): (_Valve.CLOSE,),
    ("valve", "set_valve_position"): (_Valve.SET_POSITION,),
    ("valve", "stop_valve"): (_Valve.STOP,),
    ("valve", "toggle"): (_Valve.OPEN | _Valve.CLOSE,),
    ("cover", "open_cover"): (_Cover.OPEN,),
    ("cover", "close_cover"): (_Cover.CLOSE,),
    ("cover", "set_cover_position"): (_Cover.SET_POSITION,),
    ("cover", "stop_cover"): (_Cover.STOP,),
    ("cover", "toggle"): (_Cover.OPEN | _Cover.CLOSE,),
    ("cover", "open_cover_tilt"): (_Cover.OPEN_TILT,),
    ("cover", "close_cover_tilt"): (_Cover.CLOSE_TILT,),
    ("cover", "stop_cover_tilt"): (_Cover.STOP_TILT,),
    ("cover", "set_cover_tilt_position"): (_Cover.SET_TILT_POSITION,),
    ("fan", "turn_on"): (_Fan.TURN_ON,),
    ("fan", "turn_off"): (_Fan.TURN_OFF,),
    ("fan", "toggle"): (_Fan.TURN_OFF, _Fan.TURN_ON),
    ("fan", "set_percentage"): (_Fan.SET_SPEED,),
    ("fan", "oscillate"): (_Fan.OSCILLATE,),
    ("fan", "set_direction"): (_Fan.DIRECTION,),
    ("fan", "set_preset_mode"): (_Fan.SET_SPEED, _Fan.PRESET_MODE),
    ("lock", "open"): (LockEntityFeature.OPEN,),
    ("siren", "turn_on"): (SirenEntityFeature.TURN_ON,),
    ("siren", "turn_off"): (SirenEntityFeature.TURN_OFF,),
    ("siren", "toggle"): (SirenEntityFeature.TURN_ON | SirenEntityFeature.TURN_OFF,),
    ("climate", "turn_on"): (_Climate.TURN_ON,),
    ("climate", "turn_off"): (_Climate.TURN_OFF,),
    ("climate", "toggle"): (_Climate.TURN_OFF, _Climate.TURN_ON),
    ("climate", "set_temperature"): (
        _Climate.TARGET_TEMPERATURE,
        _Climate.TARGET_TEMPERATURE_RANGE,
    ),
    ("climate", "set_humidity"): (_Climate.TARGET_HUMIDITY,),
    ("climate", "set_fan_mode"): (_Climate.FAN_MODE,),
    ("climate", "set_preset_mode"): (_Climate.PRESET_MODE,),
    ("climate", "set_swing_mode"): (_Climate.SWING_MODE,),
    ("water_heater", "turn_on"): (WaterHeaterEntityFeature.ON_OFF,),
    ("water_heater", "turn_off"): (WaterHeaterEntityFeature.ON_OFF,),
}

# (domain, service) -> (field of the call, attribute listing what the entity offers).
OFFERED_MODES: dict[tuple[str, str], tuple[str, str]] = {
    ("climate", "set_hvac_mode"): ("hvac_mode", "hvac_modes"),
    ("climate", "set_fan_mode"): ("fan_mode", "fan_modes"),
    ("climate", "set_preset_mode"): ("preset_mode", "preset_modes"),
    ("climate", "set_swing_mode"): ("swing_mode", "swing_modes"),
    ("fan", "set_preset_mode"): ("preset_mode", "preset_modes"),
    ("fan", "turn_on"): ("preset_mode", "preset_modes"),
}


def _unsupported(domain: str, service: str, state: State) -> bool:
    """Return whether the entity lacks every feature set the service needs."""
    if (required := REQUIRED_FEATURES.get((domain, service))) is None:
        return False
    supported = state.attributes.get(ATTR_SUPPORTED_FEATURES)
    if not isinstance(supported, int):
        return False  # not known: let the device be judged
    return not any(supported & features == features for features in required)


def _not_offered(domain: str, service: str, data: Mapping[str, Any], state: State) -> bool:
    """Return whether the call asks for a mode the entity does not list."""
    if (fields := OFFERED_MODES.get((domain, service))) is None:
        return False
    field, listing = fields
    offered = state.attributes.get(listing)
    return field in data and isinstance(offered, list) and data[field] not in offered


def is_refused(domain: str, service: str, data: Mapping[str, Any], state: State) -> bool:
    """Return whether Home Assistant will refuse the call for this entity before sending it."""
    return _unsupported(domain, service, state) or _not_offered(domain, service, data, state)
