"""Typed hub options and the snapshot the entities render."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .const import (
    CONF_COMMAND_TIMEOUT,
    CONF_LATENCY_TARGET,
    CONF_MIN_SAMPLES,
    CONF_MONITORED_SENSORS,
    CONF_OUTAGE_ALERT,
    CONF_STALE_AFTER,
    CONF_SUCCESS_TARGET,
    CONF_TOPIC_PREFIX,
    CONF_TRACKED_ENTITIES,
    CONF_WINDOW_HOURS,
    DEFAULT_OPTIONS,
)
from .ranking import EntityFigures
from .slo import CommandSlo
from .statistics import WindowFigures
from .uptime import DeviceAvailability


@dataclass(frozen=True, slots=True, kw_only=True)
class HubOptions:
    """The hub's options with their defaults filled in."""

    tracked_entities: list[str]
    command_timeout: float
    success_target: float
    latency_target: float
    outage_alert: float
    stale_after: float
    monitored_sensors: list[str]
    window_hours: float
    min_samples: int
    topic_prefix: str

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> HubOptions:
        """Return the options of a config entry, defaults for what is missing."""
        merged = {**DEFAULT_OPTIONS, **options}
        return cls(
            tracked_entities=list(merged[CONF_TRACKED_ENTITIES]),
            command_timeout=float(merged[CONF_COMMAND_TIMEOUT]),
            success_target=float(merged[CONF_SUCCESS_TARGET]),
            latency_target=float(merged[CONF_LATENCY_TARGET]),
            outage_alert=float(merged[CONF_OUTAGE_ALERT]),
            stale_after=float(merged[CONF_STALE_AFTER]),
            monitored_sensors=list(merged[CONF_MONITORED_SENSORS]),
            window_hours=float(merged[CONF_WINDOW_HOURS]),
            min_samples=int(merged[CONF_MIN_SAMPLES]),
            topic_prefix=str(merged[CONF_TOPIC_PREFIX]),
        )


@dataclass(frozen=True, slots=True)
class UptimeFigures:
    """The devices' uptime over the window."""

    # The fleet's time-weighted availability (%); None before any device was watched.
    availability_pct: float | None
    devices: int
    # The devices with downtime, worst first (refreshed every 5 minutes).
    worst: list[DeviceAvailability]


@dataclass(frozen=True, slots=True)
class BrokerFigures:
    """Home Assistant's link to the MQTT broker."""

    connected: bool
    uptime_pct: float | None
    reconnects: int


@dataclass(frozen=True, slots=True, kw_only=True)
class HubSnapshot:
    """Everything the hub's entities show, computed once per update."""

    figures: WindowFigures
    slo: CommandSlo
    worst_offenders: list[EntityFigures]
    # Names of the devices in outage, and how often each went down in the flap window.
    outages: list[str]
    flaps: dict[str, int]
    stale_sensors: list[str]
    uptime: UptimeFigures
    # None without Home Assistant's MQTT integration.
    broker: BrokerFigures | None
    reasons: list[str]
