"""Stored history that survives restarts: burn-rate minutes, sensor rhythms, uptime.

Read as strictly as the rest of the hub's storage (storage.py): data of the wrong
shape raises `UnreadableStorageError` naming the key at fault.
"""

from __future__ import annotations

from typing import Any

from .health_fields import shown
from .ledger import BUCKET_FIELDS
from .stored_json import (
    UnreadableStorageError,
    read_count,
    read_list,
    read_number,
    read_object,
)
from .uptime import StoredDeviceHistory


def parse_burn(value: Any) -> list[tuple[int, int, int]]:
    """Return the burn-rate windows' minutes: [minute, commands, failed] each."""
    minutes = []
    for n, slot in enumerate(read_list(value, "burn")):
        numbers = read_list(slot, f"burn[{n}]")
        if len(numbers) != 3:
            raise UnreadableStorageError(f"burn[{n}] is not [minute, commands, failed]")
        minute, commands, failed = (read_count(x, f"burn[{n}]") for x in numbers)
        if failed > commands:
            raise UnreadableStorageError(f"burn[{n}] has more failed than sent")
        minutes.append((minute, commands, failed))
    return minutes


def parse_rhythms(value: Any) -> dict[str, list[float]]:
    """Return each sensor's recent intervals between reports (seconds, oldest first)."""
    return {
        sensor: [
            read_number(x, f"rhythms.{sensor}") for x in read_list(intervals, f"rhythms.{sensor}")
        ]
        for sensor, intervals in read_object(value, "rhythms").items()
    }


def parse_uptime_buckets(value: Any) -> list[list[float]]:
    """Return the uptime ledger's buckets: [start, then seconds per kind, reconnects]."""
    buckets: list[list[float]] = []
    for n, bucket in enumerate(read_list(value, "uptime.buckets")):
        where = f"uptime.buckets[{n}]"
        numbers = read_list(bucket, where)
        if len(numbers) != BUCKET_FIELDS:
            raise UnreadableStorageError(f"{where} has {len(numbers)} numbers, not {BUCKET_FIELDS}")
        start = read_number(numbers[0], where)
        seconds = [read_number(x, where) for x in numbers[1:-1]]
        if min(seconds, default=0.0) < 0:
            raise UnreadableStorageError(f"{where} has negative seconds")
        buckets.append([start, *seconds, read_count(numbers[-1], where)])
    return buckets


def parse_uptime_devices(value: Any) -> dict[str, StoredDeviceHistory]:
    """Return each device's name, first sighting and down spells ([end, seconds])."""
    devices = {}
    for key, stored in read_object(value, "uptime.devices").items():
        where = f"uptime.devices.{key}"
        device = read_object(stored, where)
        name = device.get("name")
        if not isinstance(name, str):
            raise UnreadableStorageError(f"{where}.name is {shown(name)}, not a text")
        spells = []
        for spell in read_list(device.get("spells", []), f"{where}.spells"):
            numbers = read_list(spell, f"{where}.spells")
            if len(numbers) != 2:
                raise UnreadableStorageError(f"{where}.spells has {shown(numbers)}")
            end, seconds = (read_number(x, f"{where}.spells") for x in numbers)
            if seconds < 0:
                raise UnreadableStorageError(f"{where}.spells has {shown(numbers)}")
            spells.append((end, seconds))
        first_seen = read_number(device.get("first_seen"), f"{where}.first_seen")
        devices[key] = StoredDeviceHistory(name, first_seen, spells)
    return devices
