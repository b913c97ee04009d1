"""Temperatures as a thermostat understands them: its own unit, step and limits.

Home Assistant converts a `set_temperature` value from its own unit to the
entity's before the device gets it, refuses values outside the entity's limits,
and shows the device's answer converted back and rounded to the display
precision. A whole-degree Celsius thermostat asked for 71 °F sets 22 °C and
shows 72 °F: that is the command carried out, not a miss.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.entity_component import EntityComponent
from homeassistant.util.unit_conversion import TemperatureConverter

# Domains whose set_temperature Home Assistant refuses outside the entity's limits.
RANGE_CHECKED = frozenset({"climate"})
TEMPERATURE_DOMAINS = frozenset({"climate", "water_heater"})


@dataclass(frozen=True, slots=True)
class TemperatureScale:
    """An entity's own temperature unit, step and limits, and how Home Assistant shows them."""

    shown_unit: str
    own_unit: str
    # The smallest change the device makes, in its own unit.
    step: float
    # Shown values are rounded to this, in the shown unit.
    precision: float
    # Limits in the entity's own unit; None where Home Assistant does not check them.
    min_temp: float | None = None
    max_temp: float | None = None

    def accepts(self, shown_value: float) -> bool:
        """Return whether Home Assistant passes the value on (it refuses one out of limits)."""
        own = TemperatureConverter.convert(shown_value, self.shown_unit, self.own_unit)
        if self.min_temp is not None and own < self.min_temp:
            return False
        return self.max_temp is None or own <= self.max_temp

    def tolerance(self) -> float:
        """Return how far, in the shown unit, a carried-out setting may show from the asked one.

        Half a device step (the device rounds to its step) plus half the display
        precision (the shown value is rounded again after conversion).
        """
        half_step = TemperatureConverter.convert_interval(
            self.step / 2, self.own_unit, self.shown_unit
        )
        return half_step + self.precision / 2 + 1e-9


def _number(value: Any) -> float | None:
    """Return a property as a number, None when it is not one."""
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


@callback
def temperature_scale(hass: HomeAssistant, entity_id: str) -> TemperatureScale | None:
    """Return the scale of a climate or water heater entity, None when it cannot be known."""
    domain = entity_id.split(".", 1)[0]
    if domain not in TEMPERATURE_DOMAINS:
        return None
    component = hass.data.get(domain)
    if not isinstance(component, EntityComponent):
        return None
    if (entity := component.get_entity(entity_id)) is None:
        return None
    own_unit = getattr(entity, "temperature_unit", None)
    precision = _number(getattr(entity, "precision", None))
    if not isinstance(own_unit, str) or precision is None:
        return None
    step = _number(getattr(entity, "target_temperature_step", None)) or precision
    checked = domain in RANGE_CHECKED
    return TemperatureScale(
        shown_unit=hass.config.units.temperature_unit,
        own_unit=own_unit,
        step=step,
        precision=precision,
        min_temp=_number(getattr(entity, "min_temp", None)) if checked else None,
        max_temp=_number(getattr(entity, "max_temp", None)) if checked else None,
    )
