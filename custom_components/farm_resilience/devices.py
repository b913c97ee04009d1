"""Devices as the outage monitor sees them: which device an entity is, and what is kept of it."""

from __future__ import annotations

from dataclasses import dataclass, field

from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import entity_registry as er

from .downtime import Downtime

# The outages a device can be in (kept in storage: extend only).
OUTAGE_DOWN = "down"
OUTAGE_FLAPPING = "flapping"


@dataclass(frozen=True, slots=True)
class StoredDevice:
    """What a reload keeps of a device: since when it is down, its outage and spells."""

    down_since: float | None
    outage: str | None
    spells: list[list[float]]


@dataclass(slots=True)
class DeviceRecord:
    """A device (or a device-less entity standing for itself) and its tracked entities."""

    name: str
    spells: Downtime
    entities: set[str] = field(default_factory=set)
    unavailable: set[str] = field(default_factory=set)
    down_since: float | None = None
    outage: str | None = None  # OUTAGE_DOWN, OUTAGE_FLAPPING or None
    # The only look at this device still due; older heap entries are skipped.
    look_at: float | None = None

    @property
    def is_down(self) -> bool:
        """Return whether every tracked entity of the device is unavailable."""
        return bool(self.entities) and self.unavailable == self.entities


@callback
def device_of(hass: HomeAssistant, entity_id: str) -> tuple[str, str]:
    """Return the key and name of the device an entity belongs to.

    An entity without a device stands for itself: its id is both.
    """
    entry = er.async_get(hass).async_get(entity_id)
    device = None
    if entry is not None and entry.device_id is not None:
        device = dr.async_get(hass).async_get(entry.device_id)
    if device is None:
        return entity_id, entity_id
    return device.id, device.name_by_user or device.name or entity_id
