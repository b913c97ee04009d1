"""The degraded binary sensor: on when any reason exists, with the reasons as an attribute."""

from __future__ import annotations

from typing import Any

from homeassistant.components.binary_sensor import (
    BinarySensorDeviceClass,
    BinarySensorEntity,
    BinarySensorEntityDescription,
)
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .entity import FarmResilienceEntity
from .hub import FarmResilienceConfigEntry

PARALLEL_UPDATES = 0

DEGRADED = BinarySensorEntityDescription(
    key="degraded",
    translation_key="degraded",
    device_class=BinarySensorDeviceClass.PROBLEM,
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: FarmResilienceConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the degraded binary sensor."""
    async_add_entities([FarmResilienceDegradedSensor(entry.runtime_data, DEGRADED)])


class FarmResilienceDegradedSensor(FarmResilienceEntity, BinarySensorEntity):
    """On when commands, devices or sensors miss their targets."""

    @property
    def is_on(self) -> bool:
        """Return whether any reason exists."""
        return bool(self.hub.snapshot.reasons)

    @property
    def extra_state_attributes(self) -> dict[str, Any]:
        """Return the reasons in plain words."""
        return {"reasons": list(self.hub.snapshot.reasons)}
