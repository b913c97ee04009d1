"""The hub's storage (`.storage/farm_resilience.statistics`): read strictly, migrated by version.

Versions (Store version.minor):
- 1.1: {"buckets": [...], "entity_spans": [...]}, the histogram laid out as `V1_HISTOGRAM`.
- 1.2: adds "histogram" (the layout the buckets were counted in; when it differs from
  this version's, the latencies are moved to this version's bins) and "monitors" (what
  a reload keeps of outages, stale sensors and the degraded verdict).
- 1.3: adds what survives restarts too: "burn" (per-minute command counts of the
  burn-rate windows), "rhythms" (each monitored sensor's recent intervals between
  reports) and "uptime" (the uptime ledger's buckets and each device's down
  spells); "monitors" gains the broker link and each outage's start.

Stored data of the wrong shape raises `UnreadableStorageError` naming the key at fault:
the hub then starts fresh and says so in a repair issue, rather than failing to set up.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from homeassistant.helpers.storage import Store

from .const import OUTCOMES, STORAGE_VERSION
from .devices import OUTAGE_DOWN, OUTAGE_FLAPPING, StoredDevice
from .health_fields import shown
from .statistics import (
    HISTOGRAM_BINS,
    HISTOGRAM_MIN_S,
    HISTOGRAM_RATIO,
    StoredBucket,
    StoredSpan,
    latency_bin,
)
from .storage_history import (
    parse_burn,
    parse_rhythms,
    parse_uptime_buckets,
    parse_uptime_devices,
)
from .stored_json import (
    UnreadableStorageError,
    read_count,
    read_list,
    read_number,
    read_object,
)
from .uptime import StoredDeviceHistory

STORAGE_MINOR_VERSION = 3
# The histogram layout of version 1.1, which did not store it.
V1_HISTOGRAM: dict[str, Any] = {"min_s": 0.01, "ratio": 1.05, "bins": 265}
HISTOGRAM_LAYOUT: dict[str, Any] = {
    "min_s": HISTOGRAM_MIN_S,
    "ratio": HISTOGRAM_RATIO,
    "bins": HISTOGRAM_BINS,
}


class HubStore(Store[dict[str, Any]]):
    """The hub's Store: migrates older versions, refuses what it cannot read."""

    async def _async_migrate_func(
        self, old_major_version: int, old_minor_version: int, old_data: Any
    ) -> dict[str, Any]:
        """Return stored data of another version in this version's shape."""
        if old_major_version != STORAGE_VERSION:
            raise UnreadableStorageError(
                f"version {old_major_version}.{old_minor_version}, this version reads "
                f"{STORAGE_VERSION}.x"
            )
        if not isinstance(old_data, dict):
            raise UnreadableStorageError(f"data is {type(old_data).__name__}, not an object")
        if old_minor_version < 2:
            return {**old_data, "histogram": V1_HISTOGRAM}
        return old_data  # a newer minor version only adds keys, which are ignored


@dataclass(frozen=True, slots=True)
class StoredMonitors:
    """What a reload keeps of the monitors (times are monotonic, valid in one run only)."""

    run: str
    armed_at: float | None
    degraded: bool
    devices: dict[str, StoredDevice]
    last_report: dict[str, float]
    # Since when the broker link is lost (monotonic), and whether that raised the alarm.
    broker_down_since: float | None = None
    broker_alerted: bool = False


@dataclass(frozen=True, slots=True)
class StoredHub:
    """Everything read from storage."""

    buckets: list[StoredBucket]
    spans: list[StoredSpan]
    monitors: StoredMonitors | None
    burn: list[tuple[int, int, int]] = field(default_factory=list)
    rhythms: dict[str, list[float]] = field(default_factory=dict)
    uptime_buckets: list[list[float]] = field(default_factory=list)
    uptime_devices: dict[str, StoredDeviceHistory] = field(default_factory=dict)


def parse(data: Any) -> StoredHub:
    """Return the stored hub data, or raise UnreadableStorageError naming what is wrong."""
    data = read_object(data, "data")
    layout = _layout(data.get("histogram", HISTOGRAM_LAYOUT))
    buckets = [
        _bucket(read_object(bucket, f"buckets[{n}]"), f"buckets[{n}]", layout)
        for n, bucket in enumerate(read_list(data.get("buckets", []), "buckets"))
    ]
    spans = [
        _span(read_object(span, f"entity_spans[{n}]"), f"entity_spans[{n}]")
        for n, span in enumerate(read_list(data.get("entity_spans", []), "entity_spans"))
    ]
    monitors = data.get("monitors")
    uptime = read_object(data.get("uptime", {}), "uptime")
    return StoredHub(
        buckets,
        spans,
        None if monitors is None else _monitors(monitors),
        burn=parse_burn(data.get("burn", [])),
        rhythms=parse_rhythms(data.get("rhythms", {})),
        uptime_buckets=parse_uptime_buckets(uptime.get("buckets", [])),
        uptime_devices=parse_uptime_devices(uptime.get("devices", {})),
    )


def as_data(
    window: dict[str, Any], monitors: StoredMonitors, history: dict[str, Any]
) -> dict[str, Any]:
    """Return the data to store: the window, its histogram layout, the monitors, the history.

    `history`: what survives restarts besides the window ("burn", "rhythms", "uptime").
    """
    return {
        **window,
        **history,
        "histogram": HISTOGRAM_LAYOUT,
        "monitors": {
            "run": monitors.run,
            "armed_at": monitors.armed_at,
            "degraded": monitors.degraded,
            "devices": {
                key: {
                    "down_since": d.down_since,
                    "outage": d.outage,
                    "spells": d.spells,
                    "outage_since": d.outage_since,
                }
                for key, d in monitors.devices.items()
            },
            "last_report": monitors.last_report,
            "broker": {
                "down_since": monitors.broker_down_since,
                "alerted": monitors.broker_alerted,
            },
        },
    }


def _layout(value: Any) -> tuple[float, float, int]:
    """Return a histogram layout: lowest bin edge, ratio between edges, number of bins."""
    layout = read_object(value, "histogram")
    min_s = read_number(layout.get("min_s"), "histogram.min_s")
    ratio = read_number(layout.get("ratio"), "histogram.ratio")
    bins = read_count(layout.get("bins"), "histogram.bins")
    if min_s <= 0 or ratio <= 1 or bins < 3:
        raise UnreadableStorageError("histogram is not a layout of log-spaced bins")
    return min_s, ratio, bins


def _rebin(index: int, layout: tuple[float, float, int]) -> int:
    """Return this version's bin for a bin of a stored layout (its middle latency)."""
    min_s, ratio, bins = layout
    if layout == (HISTOGRAM_MIN_S, HISTOGRAM_RATIO, HISTOGRAM_BINS):
        return index
    if index == 0:
        return latency_bin(min_s / 2)
    top = min_s * ratio ** (bins - 2)  # where the overflow bin starts
    return latency_bin(top if index == bins - 1 else min_s * ratio ** (index - 0.5))


def _bucket(
    bucket: Mapping[str, Any], where: str, layout: tuple[float, float, int]
) -> StoredBucket:
    """Return one time bucket: start, outcome counts, latency bins in this version's layout."""
    counts = read_object(bucket.get("counts"), f"{where}.counts")
    histogram: dict[int, int] = {}
    for index, count in read_object(
        bucket.get("latency_bins", {}), f"{where}.latency_bins"
    ).items():
        try:
            stored_index = int(index)
        except ValueError as err:
            raise UnreadableStorageError(f"{where}.latency_bins has bin {shown(index)}") from err
        if not 0 <= stored_index < layout[2]:
            raise UnreadableStorageError(
                f"{where}.latency_bins has bin {shown(index)}, out of range"
            )
        new_index = _rebin(stored_index, layout)
        histogram[new_index] = histogram.get(new_index, 0) + read_count(
            count, f"{where}.latency_bins.{index}"
        )
    return StoredBucket(
        start=read_number(bucket.get("start"), f"{where}.start"),
        counts=[
            read_count(counts.get(outcome, 0), f"{where}.counts.{outcome}") for outcome in OUTCOMES
        ],
        histogram=histogram,
    )


def _span(span: Mapping[str, Any], where: str) -> StoredSpan:
    """Return one entity span: start and [commands, failed] per entity."""
    figures: dict[str, tuple[int, int]] = {}
    for entity_id, value in read_object(span.get("entities"), f"{where}.entities").items():
        pair = read_list(value, f"{where}.entities.{entity_id}")
        if len(pair) != 2:
            raise UnreadableStorageError(f"{where}.entities.{entity_id} is not [commands, failed]")
        commands, failed = (read_count(n, f"{where}.entities.{entity_id}") for n in pair)
        if failed > commands:
            raise UnreadableStorageError(f"{where}.entities.{entity_id} has more failed than sent")
        figures[entity_id] = (commands, failed)
    return StoredSpan(start=read_number(span.get("start"), f"{where}.start"), figures=figures)


def _monitors(value: Any) -> StoredMonitors:
    """Return what a reload keeps of the monitors."""
    monitors = read_object(value, "monitors")
    armed_at = monitors.get("armed_at")
    degraded = monitors.get("degraded")
    if not isinstance(degraded, bool):
        raise UnreadableStorageError("monitors.degraded is not true or false")
    run = monitors.get("run")
    if not isinstance(run, str):
        raise UnreadableStorageError("monitors.run is not a text")
    broker = read_object(monitors.get("broker", {}), "monitors.broker")
    broker_down_since = broker.get("down_since")
    return StoredMonitors(
        run=run,
        armed_at=None if armed_at is None else read_number(armed_at, "monitors.armed_at"),
        degraded=degraded,
        devices={
            key: _device(read_object(device, f"monitors.devices.{key}"), f"monitors.devices.{key}")
            for key, device in read_object(monitors.get("devices"), "monitors.devices").items()
        },
        last_report={
            sensor: read_number(at, f"monitors.last_report.{sensor}")
            for sensor, at in read_object(
                monitors.get("last_report"), "monitors.last_report"
            ).items()
        },
        broker_down_since=None
        if broker_down_since is None
        else read_number(broker_down_since, "monitors.broker.down_since"),
        broker_alerted=broker.get("alerted") is True,
    )


def _device(device: Mapping[str, Any], where: str) -> StoredDevice:
    """Return what a reload keeps of a device."""
    down_since = device.get("down_since")
    outage = device.get("outage")
    if outage not in (None, OUTAGE_DOWN, OUTAGE_FLAPPING):
        raise UnreadableStorageError(f"{where}.outage is {shown(outage)}")
    spells = []
    for spell in read_list(device.get("spells", []), f"{where}.spells"):
        numbers = read_list(spell, f"{where}.spells")
        if len(numbers) != 4:
            raise UnreadableStorageError(f"{where}.spells has {shown(numbers)}")
        start, end, downtime = (read_number(n, f"{where}.spells") for n in numbers[:3])
        spells.append([start, end, downtime, read_count(numbers[3], f"{where}.spells")])
    outage_since = device.get("outage_since")
    return StoredDevice(
        down_since=None if down_since is None else read_number(down_since, f"{where}.down_since"),
        outage=outage,
        spells=spells,
        outage_since=None
        if outage_since is None
        else read_number(outage_since, f"{where}.outage_since"),
    )
