"""Uptime: each device's availability over the window, the fleet's, and the broker link's.

A device is down while all of its tracked entities are unavailable (as for
outages, any duration counts here). Its availability is the share of the time
Home Assistant watched it within the window (since it was first seen) that it
was not down. The fleet's is time-weighted: 1 - device-seconds down / device-
seconds watched, which is the mean of the devices' availabilities weighted by
how long each was watched (a plain mean when all were watched all along).

Time while Home Assistant did not run counts neither way. What happened before
a restart comes from the hub's Store: the buckets of the ledger and each
device's down spells (an ongoing one is stored as ending at the save; the next
run counts it on from when that run starts watching).

The fleet's and the broker's figures cost the same whatever the number of devices
(ledger.py); the per-device list looks at the devices with downtime in the window
(only those: the others are at 100 %), so the hub refreshes it on its 5-minute
tick and shortly after devices go down or come back, once for a burst of changes.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from .ledger import Ledger, Rates

# Devices shown in the attribute, worst first.
WORST_DEVICES = 10
# Down spells remembered per device: beyond, the two oldest are merged (totals kept).
MAX_SPELLS = 64


@dataclass(slots=True)
class DeviceHistory:
    """One device's down spells within the window and its state now."""

    name: str
    first_seen: float  # wall clock
    # (end, seconds down): wall clock end, monotonic duration; oldest first.
    spells: deque[tuple[float, float]] = field(default_factory=deque)
    watched: bool = False
    down: bool = False
    # Monotonic start of the ongoing spell, as counted by this run (after arming).
    down_since: float | None = None


@dataclass(frozen=True, slots=True)
class DeviceAvailability:
    """How one device did over the window."""

    name: str
    availability_pct: float
    downtime_s: float


@dataclass(frozen=True, slots=True)
class StoredDeviceHistory:
    """A device's history as read from storage."""

    name: str
    first_seen: float
    spells: list[tuple[float, float]]


class UptimeMonitor:
    """Device, fleet and broker link uptime over the window."""

    def __init__(self, window_s: float) -> None:
        """Start with nothing watched: time accrues once armed."""
        self.window_s = window_s
        self.ledger = Ledger(window_s)
        self._devices: dict[str, DeviceHistory] = {}
        # The devices with a down spell in the window or going on: the only ones below 100 %.
        self._with_downtime: set[str] = set()
        self._watched = 0
        self._down = 0
        self._broker_up: bool | None = None
        self.armed = False
        # The worst devices as of the last `refresh_devices`.
        self.worst: list[DeviceAvailability] = []

    def arm(self, now: float) -> None:
        """Start watching at monotonic `now`: time and down spells count from here."""
        self.armed = True
        self.ledger.start(now)
        for key, device in self._devices.items():
            if device.watched and device.down:
                device.down_since = now
                self._with_downtime.add(key)

    def set_device(
        self, key: str, name: str, *, watched: bool, down: bool, now: float, wall: float
    ) -> bool:
        """Note a device's state: watched (has tracked entities) and down (all unavailable).

        Return whether it changed.
        """
        device = self._devices.get(key)
        if device is None:
            device = self._devices[key] = DeviceHistory(name, wall)
        device.name = name
        if (device.watched, device.down) == (watched, down):
            return False
        self._accrue(now, wall)  # at the counts that held until now
        was_down = device.watched and device.down
        is_down = watched and down
        self._watched += int(watched) - int(device.watched)
        self._down += int(is_down) - int(was_down)
        device.watched, device.down = watched, down
        if was_down and not is_down:
            self._close_spell(device, now, wall)
            if not device.spells:
                self._with_downtime.discard(key)  # back within the same instant
        elif is_down and not was_down and self.armed:
            device.down_since = now
            self._with_downtime.add(key)
        return True

    def set_broker(self, up: bool | None, now: float, wall: float) -> None:
        """Note whether the broker link is up (None: not followed)."""
        if up is not self._broker_up:
            self._accrue(now, wall)
            self._broker_up = up

    def fleet_pct(self, now: float, wall: float) -> float | None:
        """Return the fleet's time-weighted availability (%); None before any device time."""
        self._accrue(now, wall)
        totals = self.ledger.totals(wall)
        if totals.device_s <= 0:
            return None
        return max(0.0, 100.0 * (1.0 - totals.down_s / totals.device_s))

    def broker_pct(self, now: float, wall: float) -> float | None:
        """Return the share of the watched time the broker link was up (%); None before any."""
        self._accrue(now, wall)
        totals = self.ledger.totals(wall)
        if totals.broker_s <= 0:
            return None
        return max(0.0, 100.0 * (1.0 - totals.broker_down_s / totals.broker_s))

    def reconnects(self, wall: float) -> int:
        """Return how often the broker link came back within the window."""
        return int(self.ledger.totals(wall).reconnects)

    def watched_devices(self) -> int:
        """Return how many devices are watched now."""
        return self._watched

    def refresh_devices(self, now: float, wall: float) -> None:
        """Recompute each device's availability; keep the worst (those with downtime)."""
        self._accrue(now, wall)
        cutoff = wall - self.window_s
        watched_since = self.ledger.watched_since(wall)
        found: list[DeviceAvailability] = []
        for key in list(self._with_downtime):
            device = self._devices[key]
            while device.spells and device.spells[0][0] <= cutoff:
                device.spells.popleft()
            if not device.spells and device.down_since is None:
                self._with_downtime.discard(key)
                if not device.watched:
                    del self._devices[key]  # no longer tracked, nothing left in the window
                continue
            ongoing = (
                0.0 if device.down_since is None else min(now - device.down_since, self.window_s)
            )
            down = ongoing + sum(min(seconds, end - cutoff) for end, seconds in device.spells)
            watched = watched_since(max(device.first_seen, cutoff))
            if watched > 0:
                pct = max(0.0, 100.0 * (1.0 - down / watched))
                found.append(DeviceAvailability(device.name, pct, down))
        found.sort(key=lambda device: (device.availability_pct, device.name))
        self.worst = found[:WORST_DEVICES]

    def as_data(self, now: float, wall: float) -> dict[str, Any]:
        """Return what to store: the buckets, and each device's spells (an ongoing one ends now)."""
        self._accrue(now, wall)
        devices: dict[str, Any] = {}
        for key, device in self._devices.items():
            spells = [list(spell) for spell in device.spells]
            if device.down_since is not None and now > device.down_since:
                spells.append([wall, now - device.down_since])
            devices[key] = {"name": device.name, "first_seen": device.first_seen, "spells": spells}
        return {"buckets": self.ledger.as_list(), "devices": devices}

    def restore(
        self, buckets: list[list[float]], devices: dict[str, StoredDeviceHistory], wall: float
    ) -> None:
        """Take back stored history; call before any device state is noted."""
        self.ledger.load(buckets, wall)
        for key, stored in devices.items():
            self._devices[key] = DeviceHistory(
                stored.name, stored.first_seen, deque(sorted(stored.spells))
            )
            if stored.spells:
                self._with_downtime.add(key)

    def _accrue(self, now: float, wall: float) -> None:
        """Accrue the time since the last change at the counts that held."""
        self.ledger.accrue(now, wall, Rates(self._watched, self._down, self._broker_up))

    def _close_spell(self, device: DeviceHistory, now: float, wall: float) -> None:
        """End the device's ongoing spell (if this run counted one)."""
        if device.down_since is not None and now > device.down_since:
            device.spells.append((wall, now - device.down_since))
            if len(device.spells) > MAX_SPELLS:
                (_, first), (end, second) = device.spells.popleft(), device.spells.popleft()
                device.spells.appendleft((end, first + second))
        device.down_since = None
