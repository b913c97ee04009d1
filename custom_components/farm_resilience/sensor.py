"""Sensors of the hub: command success, latency, failures, outages and stale sensors."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from homeassistant.components.sensor import (
    SensorDeviceClass,
    SensorEntity,
    SensorEntityDescription,
    SensorStateClass,
)
from homeassistant.const import PERCENTAGE, UnitOfTime
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback
from homeassistant.helpers.typing import StateType

from .const import OUTCOME_TIMEOUT, OUTCOME_UNAVAILABLE
from .entity import FarmResilienceEntity
from .hub import FarmResilienceConfigEntry, FarmResilienceHub
from .models import HubSnapshot

PARALLEL_UPDATES = 0


@dataclass(frozen=True, kw_only=True)
class FarmResilienceSensorEntityDescription(SensorEntityDescription):
    """A hub sensor: its value and attributes read from the snapshot."""

    value_fn: Callable[[HubSnapshot], StateType]
    attributes_fn: Callable[[HubSnapshot], dict[str, Any]] = lambda snapshot: {}


def _offenders(snapshot: HubSnapshot) -> list[dict[str, Any]]:
    """Return the worst offenders as plain data for an attribute."""
    return [
        {
            "entity_id": offender.entity_id,
            "commands": offender.commands,
            "failed": offender.failed,
            "success_rate": round(offender.success_rate, 2),
        }
        for offender in snapshot.worst_offenders
    ]


SENSORS: tuple[FarmResilienceSensorEntityDescription, ...] = (
    FarmResilienceSensorEntityDescription(
        key="command_success_rate",
        translation_key="command_success_rate",
        native_unit_of_measurement=PERCENTAGE,
        state_class=SensorStateClass.MEASUREMENT,
        suggested_display_precision=1,
        value_fn=lambda snapshot: snapshot.figures.success_rate,
        attributes_fn=lambda snapshot: {"commands": snapshot.figures.commands},
    ),
    FarmResilienceSensorEntityDescription(
        key="command_latency_p50",
        translation_key="command_latency_p50",
        device_class=SensorDeviceClass.DURATION,
        native_unit_of_measurement=UnitOfTime.SECONDS,
        state_class=SensorStateClass.MEASUREMENT,
        suggested_display_precision=2,
        value_fn=lambda snapshot: snapshot.figures.latency_p50,
    ),
    FarmResilienceSensorEntityDescription(
        key="command_latency_p95",
        translation_key="command_latency_p95",
        device_class=SensorDeviceClass.DURATION,
        native_unit_of_measurement=UnitOfTime.SECONDS,
        state_class=SensorStateClass.MEASUREMENT,
        suggested_display_precision=2,
        value_fn=lambda snapshot: snapshot.figures.latency_p95,
    ),
    FarmResilienceSensorEntityDescription(
        key="commands_failed",
        translation_key="commands_failed",
        state_class=SensorStateClass.MEASUREMENT,
        value_fn=lambda snapshot: snapshot.figures.failed,
        attributes_fn=lambda snapshot: {
            OUTCOME_TIMEOUT: snapshot.figures.counts[OUTCOME_TIMEOUT],
            OUTCOME_UNAVAILABLE: snapshot.figures.counts[OUTCOME_UNAVAILABLE],
            "worst_offenders": _offenders(snapshot),
        },
    ),
    FarmResilienceSensorEntityDescription(
        key="unavailable_devices",
        translation_key="unavailable_devices",
        state_class=SensorStateClass.MEASUREMENT,
        value_fn=lambda snapshot: len(snapshot.outages),
        attributes_fn=lambda snapshot: {"devices": snapshot.outages},
    ),
    FarmResilienceSensorEntityDescription(
        key="stale_sensors",
        translation_key="stale_sensors",
        state_class=SensorStateClass.MEASUREMENT,
        value_fn=lambda snapshot: len(snapshot.stale_sensors),
        attributes_fn=lambda snapshot: {"sensors": snapshot.stale_sensors},
    ),
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: FarmResilienceConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the hub's sensors."""
    hub = entry.runtime_data
    async_add_entities(FarmResilienceSensor(hub, description) for description in SENSORS)


class FarmResilienceSensor(FarmResilienceEntity, SensorEntity):
    """A hub sensor rendering one description."""

    entity_description: FarmResilienceSensorEntityDescription

    def __init__(
        self, hub: FarmResilienceHub, description: FarmResilienceSensorEntityDescription
    ) -> None:
        """Render `description` from the hub's snapshot."""
        super().__init__(hub, description)

    @property
    def native_value(self) -> StateType:
        """Return the sensor's value from the snapshot."""
        return self.entity_description.value_fn(self.hub.snapshot)

    @property
    def extra_state_attributes(self) -> dict[str, Any]:
        """Return the sensor's attributes from the snapshot."""
        return self.entity_description.attributes_fn(self.hub.snapshot)
