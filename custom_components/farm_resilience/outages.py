"""Device outages: a device is down when all of its tracked entities are unavailable."""

from __future__ import annotations

import heapq
from collections.abc import Callable
from dataclasses import dataclass, field

from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import (
    device_registry as dr,
)
from homeassistant.helpers import (
    entity_registry as er,
)
from homeassistant.helpers import (
    issue_registry as ir,
)

from .const import DOMAIN
from .timing import EarliestCall


@dataclass(slots=True)
class _Device:
    """A device (or a device-less entity standing for itself) and its tracked entities."""

    name: str
    entities: set[str] = field(default_factory=set)
    unavailable: set[str] = field(default_factory=set)
    down_since: float | None = None

    @property
    def is_down(self) -> bool:
        """Return whether every tracked entity of the device is unavailable."""
        return bool(self.entities) and self.unavailable == self.entities


class OutageMonitor:
    """Tells which devices are down past `outage_alert`, with a repair issue for each."""

    def __init__(
        self, hass: HomeAssistant, outage_alert: float, on_change: Callable[[], None]
    ) -> None:
        """Start with no device known and the alarm disarmed."""
        self.hass = hass
        self.outage_alert = outage_alert
        self._on_change = on_change
        self._device_of: dict[str, str] = {}
        self._devices: dict[str, _Device] = {}
        self._down: set[str] = set()
        # When down devices become outages; an entry whose device came back or went
        # down again since is skipped when it comes up. Nothing scans every device.
        self._alarms: list[tuple[float, str]] = []
        self.outages: dict[str, str] = {}
        self.armed_at: float | None = None
        self._check = EarliestCall(hass, self.async_evaluate)

    @callback
    def async_arm(self, now: float) -> None:
        """Allow alarms: outages count from `now` at the earliest (no start-up false alarms)."""
        self.armed_at = now
        for key in self._down:
            self._add_alarm(key)
        self.async_evaluate(now)

    @callback
    def async_set_availability(self, entity_id: str, status: bool | None, now: float) -> None:
        """Note that an entity became available (False), unavailable (True) or went away (None)."""
        key = self._device_of.get(entity_id)
        if key is None:
            key = self._device_of[entity_id] = self._device_key(entity_id)
        device = self._devices[key]
        was_down = device.is_down
        device.entities.add(entity_id)
        device.unavailable.discard(entity_id)
        if status is None:
            device.entities.discard(entity_id)
        elif status:
            device.unavailable.add(entity_id)
        if device.is_down == was_down:
            return
        if device.is_down:
            device.down_since = now
            self._down.add(key)
            self._add_alarm(key)
        else:
            device.down_since = None
            self._down.discard(key)
            if key in self.outages:
                del self.outages[key]
                ir.async_delete_issue(self.hass, DOMAIN, _issue_id(key))
                self._on_change()

    @callback
    def async_evaluate(self, now: float) -> None:
        """Raise the outages whose time has come; ask to run again at the next one."""
        raised = False
        while self._alarms and self._alarms[0][0] <= now:
            at, key = heapq.heappop(self._alarms)
            device = self._devices[key]
            if device.down_since is None or self._alarm_time(device) != at:
                continue  # back up, or down again since: a later alarm stands for it
            if key not in self.outages:
                self.outages[key] = device.name
                self._create_issue(key, device.name)
                raised = True
        if self._alarms:
            self._check.request(self._alarms[0][0])
        if raised:
            self._on_change()

    @callback
    def async_stop(self) -> None:
        """Stop checking and remove this monitor's repair issues."""
        self._check.cancel()
        for key in self.outages:
            ir.async_delete_issue(self.hass, DOMAIN, _issue_id(key))
        self.outages = {}
        self._alarms.clear()

    def reasons(self, now: float) -> list[str]:
        """Return one plain-words reason per device in outage."""
        return [
            f"{name}: down for more than {self.outage_alert:g} s "
            f"(all {len(self._devices[key].entities)} tracked entities unavailable)"
            for key, name in sorted(self.outages.items(), key=lambda item: item[1])
        ]

    def down_devices(self) -> dict[str, float]:
        """Return the names of devices down right now (any duration) with their start time."""
        return {
            device.name: device.down_since
            for device in map(self._devices.__getitem__, self._down)
            if device.down_since is not None
        }

    def _alarm_time(self, device: _Device) -> float:
        """Return when a down device becomes an outage."""
        assert device.down_since is not None
        assert self.armed_at is not None
        return max(device.down_since, self.armed_at) + self.outage_alert

    def _add_alarm(self, key: str) -> None:
        """Note when a down device crosses the outage threshold (nothing before arming)."""
        if self.armed_at is not None:
            at = self._alarm_time(self._devices[key])
            heapq.heappush(self._alarms, (at, key))
            self._check.request(at)

    def _create_issue(self, key: str, name: str) -> None:
        """Raise the repair issue of a device in outage."""
        ir.async_create_issue(
            self.hass,
            DOMAIN,
            _issue_id(key),
            is_fixable=False,
            severity=ir.IssueSeverity.ERROR,
            translation_key="device_down",
            translation_placeholders={"device": name, "seconds": f"{self.outage_alert:g}"},
        )

    def _device_key(self, entity_id: str) -> str:
        """Return the device the entity belongs to, creating its record on first sight."""
        entry = er.async_get(self.hass).async_get(entity_id)
        device_entry = None
        if entry is not None and entry.device_id is not None:
            device_entry = dr.async_get(self.hass).async_get(entry.device_id)
        if device_entry is not None:
            key = device_entry.id
            name = device_entry.name_by_user or device_entry.name or entity_id
        else:
            key, name = entity_id, entity_id
        self._devices.setdefault(key, _Device(name))
        return key


def _issue_id(key: str) -> str:
    """Return the repair issue id for a device."""
    return f"device_down_{key}"
