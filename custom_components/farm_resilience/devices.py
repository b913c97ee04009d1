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
    # Since when its outage lasts (monotonic), to tell how long it lasted when it is over.
    outage_since: float | None = None


@dataclass(slots=True)
class DeviceRecord:
    """A device (or a device-less entity standing for itself) and its tracked entities."""

    name: str
    spells: Downtime
    # The device registry's id; None for an entity without a device (standing for itself).
    device_id: str | None = None
    entities: set[str] = field(default_factory=set)
    unavailable: set[str] = field(default_factory=set)
    down_since: float | None = None
    outage: str | None = None  # OUTAGE_DOWN, OUTAGE_FLAPPING or None
    outage_since: float | None = None  # monotonic, while in outage
    # The only look at this device still due; older heap entries are skipped.
    look_at: float | None = None

    @property
    def is_down(self) -> bool:
        """Return whether every tracked entity of the device is unavailable."""
        return bool(self.entities) and self.unavailable == self.entities


@callback
def device_of(hass: HomeAssistant, entity_id: str) -> tuple[str, str, str | None]:
    """Return the key, name and device registry id of the device an entity belongs to.

    An entity without a device stands for itself: its id is key and name, no device id.
    """
    entry = er.async_get(hass).async_get(entity_id)
    device = None
    if entry is not None and entry.device_id is not None:
        device = dr.async_get(hass).async_get(entry.device_id)
    if device is None:
        return entity_id, entity_id, None
    return device.id, device.name_by_user or device.name or entity_id, device.id
