"""Device outages: a device is down when all of its tracked entities are unavailable.

A device is in outage, with a repair issue, when it is
- down: down without a break for `outage_alert`; over the moment it is back;
- flapping: down in two or more spells for `outage_alert` in total within the last
  `FLAP_WINDOW_FACTOR` x `outage_alert`; over once it is up and that total has
  dropped under `outage_alert` (or one spell is left in the window).

Groups and wrappers such as `switch_as_x` are no devices: their members are.
Times are monotonic (`time.monotonic()`); nothing scans every device: each device
is looked at when it changes and when its own next look falls due.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable, Mapping

from homeassistant.core import HomeAssistant, callback

from .bounds import Texts
from .devices import OUTAGE_DOWN, OUTAGE_FLAPPING, DeviceRecord, StoredDevice, device_of
from .downtime import Downtime
from .issues import (
    async_announce_outage_over,
    async_clear_device_issue,
    async_raise_device_issue,
)
from .timing import EarliestCall
from .virtual import is_virtual

# Downtime is summed over this many times `outage_alert` to find flapping devices.
FLAP_WINDOW_FACTOR = 5
# A flapping device that is up again is looked at no more often than this.
MIN_RECHECK_S = 1.0


class OutageMonitor:
    """Tells which devices are down or flapping, with a repair issue for each."""

    def __init__(
        self,
        hass: HomeAssistant,
        outage_alert: float,
        on_change: Callable[[], None],
        on_device: Callable[[str, DeviceRecord], None] = lambda key, device: None,
    ) -> None:
        """Start with no device known and the alarm disarmed.

        `on_change`: the outages changed. `on_device`: a device may have gone down,
        come back, or gained or lost its tracked entities (uptime follows it).
        """
        self.hass = hass
        self.outage_alert = outage_alert
        self.flap_window = FLAP_WINDOW_FACTOR * outage_alert
        self._on_change = on_change
        self._on_device = on_device
        # Entity -> device key; None for a group or wrapper, which counts for no device.
        self._device_of: dict[str, str | None] = {}
        self._devices: dict[str, DeviceRecord] = {}
        self._looks: list[tuple[float, str]] = []
        self._restored: dict[str, StoredDevice] = {}
        # While the tracker reports the entities found on start: no flips yet.
        self._settling = True
        self.outages: dict[str, str] = {}
        self.armed_at: float | None = None
        self._check = EarliestCall(hass, self.async_evaluate)

    @callback
    def async_restore(self, devices: Mapping[str, StoredDevice]) -> None:
        """Take back what a reload kept; call before the tracker reports availability."""
        self._restored = dict(devices)

    @callback
    def async_settle(self) -> None:
        """Take the devices as the tracker found them on start, and look at them.

        Until now entities were reported one by one: a device of two entities would
        have looked down for a moment. A device down since before a reload is down
        since then; a kept outage that is over ends, one that still stands is shown.
        """
        self._settling = False
        now = time.monotonic()
        for key, device in self._devices.items():
            self._on_device(key, device)
            if device.is_down:
                stored = self._restored.get(key)
                kept = None if stored is None else stored.down_since
                device.down_since = now if kept is None else kept
            if not self._look(key, device, now) and device.outage is not None:
                self._create_issue(key, device)  # kept and still standing: make sure it shows
        for key, stored in self._restored.items():
            if key not in self._devices and stored.outage is not None:
                async_clear_device_issue(self.hass, key)  # none of its entities is tracked
        self._restored = {}

    @callback
    def async_arm(self, at: float) -> None:
        """Allow alarms: downtime counts from `at` at the earliest (no start-up false alarms)."""
        self.armed_at = at
        now = time.monotonic()
        for key, device in self._devices.items():
            if device.down_since is not None:
                self._look(key, device, now)

    @callback
    def async_set_availability(self, entity_id: str, status: bool | None, _at: float) -> None:
        """Note that an entity became available (False), unavailable (True) or went away (None).

        The monitor reads the monotonic clock itself: it runs as the change happens.
        """
        if entity_id not in self._device_of:
            self._device_of[entity_id] = self._device_key(entity_id)
        elif status is False and self._device_of[entity_id] is not None:
            self._recheck_virtual(entity_id)
        if (key := self._device_of[entity_id]) is None:
            return
        device = self._devices[key]
        was_down = device.is_down
        device.entities.add(entity_id)
        device.unavailable.discard(entity_id)
        if status is None:
            device.entities.discard(entity_id)
        elif status:
            device.unavailable.add(entity_id)
        if self._settling:
            return
        self._on_device(key, device)
        if device.is_down != was_down:
            self._on_flip(key, device)

    @callback
    def async_evaluate(self, now: float) -> None:
        """Look at the devices whose look is due; ask to run again at the next one."""
        changed = False
        while self._looks and self._looks[0][0] <= now:
            at, key = heapq.heappop(self._looks)
            device = self._devices[key]
            if device.look_at == at:
                device.look_at = None
                changed |= self._look(key, device, now)
        if self._looks:
            self._check.request(self._looks[0][0])
        if changed:
            self._on_change()

    @callback
    def async_stop(self) -> None:
        """Stop checking; repair issues stay open (a reload takes them back)."""
        self._check.cancel()
        self._looks.clear()

    def reasons(self, now: float) -> Texts:
        """Return one plain-words reason per device in outage, by device name."""
        outages = sorted(self.outages.items(), key=lambda item: item[1])
        return Texts.of((self._reason(self._devices[key], now) for key, _ in outages), len(outages))

    def flaps(self, now: float) -> dict[str, int]:
        """Return how many times each device in outage went down within the flap window."""
        return {
            self._devices[key].name: self._within(self._devices[key], now)[1]
            for key in self.outages
        }

    def down_devices(self) -> dict[str, float]:
        """Return the names of devices down right now (any duration) with their monotonic start."""
        return {
            device.name: device.down_since
            for device in self._devices.values()
            if device.down_since is not None
        }

    def as_stored(self) -> dict[str, StoredDevice]:
        """Return what a reload must keep: every device down, in outage or with spells."""
        return {
            key: StoredDevice(
                device.down_since, device.outage, device.spells.as_list(), device.outage_since
            )
            for key, device in self._devices.items()
            if device.down_since is not None or device.outage is not None or device.spells
        }

    def _on_flip(self, key: str, device: DeviceRecord) -> None:
        """A device went down or came back: note the spell and look at it."""
        now = time.monotonic()
        if device.is_down:
            device.down_since = now
        else:
            if device.down_since is not None and self.armed_at is not None:
                device.spells.add(max(device.down_since, self.armed_at), now)
            device.down_since = None
        if self._look(key, device, now):
            self._on_change()

    def _look(self, key: str, device: DeviceRecord, now: float) -> bool:
        """Raise, change or end the device's outage as of `now`; return whether it changed."""
        if self.armed_at is None:
            return False
        verdict = self._verdict(device, now)
        changed = verdict != device.outage
        if changed:
            if verdict is None:
                del self.outages[key]
                async_clear_device_issue(self.hass, key)
                self._announce_over(device, now)
            else:
                if device.outage is None:
                    device.outage_since = self._outage_start(device, now)
                self.outages[key] = device.name
            device.outage = verdict
            if verdict is not None:
                self._create_issue(key, device)
        if (at := self._next_look(device, now)) != device.look_at:
            device.look_at = at
            if at is not None:
                heapq.heappush(self._looks, (at, key))
                self._check.request(at)
        return changed

    def _verdict(self, device: DeviceRecord, now: float) -> str | None:
        """Return the outage the device is in as of `now`, if any."""
        if device.down_since is not None and now - self._counted_since(device) >= self.outage_alert:
            return OUTAGE_DOWN
        downtime, spells = self._within(device, now)
        if spells >= 2 and downtime >= self.outage_alert:
            return OUTAGE_FLAPPING
        if device.outage == OUTAGE_FLAPPING and device.down_since is not None:
            return OUTAGE_FLAPPING  # a flapping device ends its outage only while up
        return None

    def _outage_start(self, device: DeviceRecord, now: float) -> float:
        """Return when the downtime that put the device in outage began (since arming)."""
        starts = [now]
        if device.down_since is not None:
            starts.append(self._counted_since(device))
        if (first := device.spells.first_start(now)) is not None:
            starts.append(first)
        return min(starts)

    def _announce_over(self, device: DeviceRecord, now: float) -> None:
        """Tell how long the outage that just ended lasted (its repair issue is gone)."""
        if device.outage is None or device.outage_since is None:
            return
        async_announce_outage_over(
            self.hass,
            device.name,
            outage=device.outage,
            lasted_s=now - device.outage_since,
            device_id=device.device_id,
        )
        device.outage_since = None

    def _next_look(self, device: DeviceRecord, now: float) -> float | None:
        """Return the earliest time the device's verdict could change without a flip."""
        if device.outage == OUTAGE_DOWN:
            return None  # over when it comes back, which is a flip
        down = device.down_since is not None
        downtime, _ = self._within(device, now)
        if device.outage == OUTAGE_FLAPPING:
            if down:  # down long enough at a stretch, it is down rather than flapping
                return self._counted_since(device) + self.outage_alert
            # Spells leave the window no faster than time passes.
            return now + max(downtime - self.outage_alert, MIN_RECHECK_S)
        # Downtime grows no faster than time passes.
        return now + self.outage_alert - downtime if down else None

    def _within(self, device: DeviceRecord, now: float) -> tuple[float, int]:
        """Return the device's downtime and spells within the flap window, since arming."""
        since = None if device.down_since is None else self._counted_since(device)
        return device.spells.within(now, since)

    def _counted_since(self, device: DeviceRecord) -> float:
        """Return when the current spell started counting: never before arming."""
        assert device.down_since is not None
        assert self.armed_at is not None
        return max(device.down_since, self.armed_at)

    def _reason(self, device: DeviceRecord, now: float) -> str:
        """Return the reason of a device in outage, in plain words."""
        if device.outage == OUTAGE_DOWN:
            return (
                f"{device.name}: down for more than {self.outage_alert:g} s "
                f"(all {len(device.entities)} tracked entities unavailable)"
            )
        downtime, spells = self._within(device, now)
        return (
            f"{device.name}: flapping, down {spells} times for {downtime:.0f} s "
            f"within {self.flap_window:g} s"
        )

    def _create_issue(self, key: str, device: DeviceRecord) -> None:
        """Raise (or update) the repair issue of a device in outage."""
        placeholders = {"device": device.name, "seconds": f"{self.outage_alert:g}"}
        if device.outage == OUTAGE_DOWN:
            async_raise_device_issue(
                self.hass, key, translation_key="device_down", placeholders=placeholders
            )
        else:
            placeholders["window"] = f"{self.flap_window:g}"
            async_raise_device_issue(
                self.hass, key, translation_key="device_flapping", placeholders=placeholders
            )

    def _recheck_virtual(self, entity_id: str) -> None:
        """Take a group out of its device once it shows its members (first seen unavailable)."""
        state = self.hass.states.get(entity_id)
        if state is None or not is_virtual(self.hass, entity_id):
            return
        key = self._device_of[entity_id]
        self._device_of[entity_id] = None
        if key is not None:
            device = self._devices[key]
            was_down = device.is_down
            device.entities.discard(entity_id)
            device.unavailable.discard(entity_id)
            if self._settling:
                return
            self._on_device(key, device)
            if device.is_down != was_down:
                self._on_flip(key, device)

    def _device_key(self, entity_id: str) -> str | None:
        """Return the device the entity belongs to, creating its record on first sight.

        None for a group or wrapper: it is down only because its members are.
        """
        if is_virtual(self.hass, entity_id):
            return None
        key, name, device_id = device_of(self.hass, entity_id)
        if key not in self._devices:
            self._devices[key] = device = DeviceRecord(name, Downtime(self.flap_window), device_id)
            if (stored := self._restored.get(key)) is not None:
                device.spells.load(stored.spells)
                device.outage = stored.outage
                device.outage_since = stored.outage_since
                if stored.outage is not None:
                    self.outages[key] = name
        return key
