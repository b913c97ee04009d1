"""Sensors of the hub (commands, objectives, uptime, stale sensors) and of each agent."""

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

from .agent_attributes import (
    SLO_SHOWN_STATUSES,
    objective_attributes,
    task_type_attributes,
    worker_attributes,
)
from .agent_health import ROUTES, AgentHealth
from .agent_tasks import PRIORITIES, SloReport, TaskFigures
from .const import OUTCOME_TIMEOUT, OUTCOME_UNAVAILABLE
from .entity import FarmAgentEntity, FarmResilienceEntity
from .entries import FarmResilienceConfigEntry, is_agent_entry
from .hub import FarmResilienceHub
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


def _budget_attributes(snapshot: HubSnapshot) -> dict[str, Any]:
    """Return the error budget's workings: allowed and actual failures, burn rates."""
    slo = snapshot.slo
    allowed = slo.allowed_failures
    return {
        "allowed_failures": None if allowed is None else round(allowed, 2),
        "failed": snapshot.figures.failed,
        "commands": snapshot.figures.commands,
        **{
            f"burn_rate_{window}": None if rate is None else round(rate, 2)
            for window, rate in slo.burn_rates.items()
        },
        "burn_alerts": [fired.alert.name for fired in slo.alerts],
    }


def _availability_attributes(snapshot: HubSnapshot) -> dict[str, Any]:
    """Return the devices watched and the worst ones' availability over the window."""
    return {
        "devices": snapshot.uptime.devices,
        "worst": [
            {
                "device": device.name,
                "availability": round(device.availability_pct, 3),
                "downtime_s": round(device.downtime_s, 1),
            }
            for device in snapshot.uptime.worst
        ],
    }


def _command_latency(
    key: str, value_fn: Callable[[HubSnapshot], float | None]
) -> FarmResilienceSensorEntityDescription:
    """Return the description of a quantile of command latency in seconds."""
    return FarmResilienceSensorEntityDescription(
        key=key,
        translation_key=key,
        device_class=SensorDeviceClass.DURATION,
        native_unit_of_measurement=UnitOfTime.SECONDS,
        state_class=SensorStateClass.MEASUREMENT,
        suggested_display_precision=2,
        value_fn=value_fn,
    )


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
    _command_latency("command_latency_p50", lambda snapshot: snapshot.figures.latency_p50),
    _command_latency("command_latency_p95", lambda snapshot: snapshot.figures.latency_p95),
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
        key="error_budget_remaining",
        translation_key="error_budget_remaining",
        native_unit_of_measurement=PERCENTAGE,
        state_class=SensorStateClass.MEASUREMENT,
        suggested_display_precision=1,
        value_fn=lambda snapshot: snapshot.slo.budget_remaining_pct,
        attributes_fn=_budget_attributes,
    ),
    FarmResilienceSensorEntityDescription(
        key="unavailable_devices",
        translation_key="unavailable_devices",
        state_class=SensorStateClass.MEASUREMENT,
        value_fn=lambda snapshot: len(snapshot.outages),
        attributes_fn=lambda snapshot: {"devices": snapshot.outages, "flaps": snapshot.flaps},
    ),
    FarmResilienceSensorEntityDescription(
        key="device_availability",
        translation_key="device_availability",
        native_unit_of_measurement=PERCENTAGE,
        state_class=SensorStateClass.MEASUREMENT,
        suggested_display_precision=2,
        value_fn=lambda snapshot: snapshot.uptime.availability_pct,
        attributes_fn=_availability_attributes,
    ),
    FarmResilienceSensorEntityDescription(
        key="stale_sensors",
        translation_key="stale_sensors",
        state_class=SensorStateClass.MEASUREMENT,
        value_fn=lambda snapshot: len(snapshot.stale_sensors),
        attributes_fn=lambda snapshot: {"sensors": snapshot.stale_sensors},
    ),
)


@dataclass(frozen=True, kw_only=True)
class FarmAgentSensorEntityDescription(SensorEntityDescription):
    """An agent sensor: its value and attributes read from the agent's last valid health."""

    value_fn: Callable[[AgentHealth], StateType]
    attributes_fn: Callable[[AgentHealth], dict[str, Any]] = lambda health: {}


def _latency(
    key: str, value_fn: Callable[[AgentHealth], float | None]
) -> FarmAgentSensorEntityDescription:
    """Return the description of a latency in milliseconds."""
    return FarmAgentSensorEntityDescription(
        key=key,
        translation_key=key,
        device_class=SensorDeviceClass.DURATION,
        native_unit_of_measurement=UnitOfTime.MILLISECONDS,
        state_class=SensorStateClass.MEASUREMENT,
        suggested_display_precision=1,
        value_fn=value_fn,
    )


def _depth(
    key: str, value_fn: Callable[[AgentHealth], StateType]
) -> FarmAgentSensorEntityDescription:
    """Return the description of a number of waiting messages."""
    return FarmAgentSensorEntityDescription(
        key=key,
        translation_key=key,
        state_class=SensorStateClass.MEASUREMENT,
        value_fn=value_fn,
    )


def _task_depth(priority: str) -> FarmAgentSensorEntityDescription:
    """Return the description of the tasks waiting at one priority."""
    return _depth(
        f"task_queue_depth_{priority}",
        lambda health: None if health.tasks is None else health.tasks.depth[priority],
    )


def _tasks(value_fn: Callable[[TaskFigures], StateType]) -> Callable[[AgentHealth], StateType]:
    """Return a value function of the task figures: unknown when the agent sent none."""
    return lambda health: None if health.tasks is None else value_fn(health.tasks)


def _slo(value_fn: Callable[[SloReport], StateType]) -> Callable[[AgentHealth], StateType]:
    """Return a value function of the service levels: unknown when the agent sent none."""
    return lambda health: None if health.slo is None else value_fn(health.slo)


# Keys are those of the contract vectors' `expect` (tests/contract/health_vectors.json).
AGENT_SENSORS: tuple[FarmAgentSensorEntityDescription, ...] = (
    FarmAgentSensorEntityDescription(
        key="route",
        translation_key="route",
        device_class=SensorDeviceClass.ENUM,
        options=list(ROUTES),
        value_fn=lambda health: health.route,
    ),
    _latency("pooler_latency", lambda health: health.pooler_latency_ms),
    _latency("direct_latency", lambda health: health.direct_latency_ms),
    _depth("queue_depth", lambda health: health.queue_depth),
    _depth("dlq_depth", lambda health: health.dlq_depth),
    _depth("spool_depth", lambda health: health.spool_depth),
    _latency("relay_latency_p95", lambda health: health.relay_latency_p95_ms),
    FarmAgentSensorEntityDescription(
        key="relayed_total",
        translation_key="relayed_total",
        state_class=SensorStateClass.TOTAL_INCREASING,
        value_fn=lambda health: health.relayed_total,
    ),
    *(_task_depth(priority) for priority in PRIORITIES),
    _depth("task_dlq_depth", _tasks(lambda tasks: tasks.dlq_depth)),
    FarmAgentSensorEntityDescription(
        key="task_success_rate",
        translation_key="task_success_rate",
        native_unit_of_measurement=PERCENTAGE,
        state_class=SensorStateClass.MEASUREMENT,
        suggested_display_precision=2,
        value_fn=_tasks(lambda tasks: tasks.success_pct),
        attributes_fn=task_type_attributes,
    ),
    FarmAgentSensorEntityDescription(
        key="task_processing_p95",
        translation_key="task_processing_p95",
        device_class=SensorDeviceClass.DURATION,
        native_unit_of_measurement=UnitOfTime.SECONDS,
        state_class=SensorStateClass.MEASUREMENT,
        suggested_display_precision=2,
        value_fn=_tasks(lambda tasks: tasks.processing_p95_s),
    ),
    FarmAgentSensorEntityDescription(
        key="task_throughput",
        translation_key="task_throughput",
        native_unit_of_measurement="tasks/s",
        state_class=SensorStateClass.MEASUREMENT,
        suggested_display_precision=2,
        value_fn=_tasks(lambda tasks: tasks.throughput_per_s),
    ),
    FarmAgentSensorEntityDescription(
        key="workers_alive",
        translation_key="workers_alive",
        state_class=SensorStateClass.MEASUREMENT,
        value_fn=_tasks(lambda tasks: tasks.workers_alive),
        attributes_fn=worker_attributes,
    ),
    FarmAgentSensorEntityDescription(
        key="slo_error_budget_remaining",
        translation_key="slo_error_budget_remaining",
        native_unit_of_measurement=PERCENTAGE,
        state_class=SensorStateClass.MEASUREMENT,
        suggested_display_precision=1,
        value_fn=_slo(lambda slo: slo.budget_remaining_pct),
        attributes_fn=objective_attributes,
    ),
    FarmAgentSensorEntityDescription(
        key="slo_status",
        translation_key="slo_status",
        device_class=SensorDeviceClass.ENUM,
        options=list(SLO_SHOWN_STATUSES),
        # "unknown" (no data) is the sensor's own unknown state.
        value_fn=_slo(lambda slo: slo.status if slo.status in SLO_SHOWN_STATUSES else None),
    ),
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: FarmResilienceConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the hub's sensors, or an agent's."""
    if is_agent_entry(entry):
        link = entry.runtime_data
        async_add_entities(FarmAgentSensor(link, description) for description in AGENT_SENSORS)
    else:
        hub = entry.runtime_data
        async_add_entities(FarmResilienceSensor(hub, description) for description in SENSORS)


class FarmResilienceSensor(FarmResilienceEntity[FarmResilienceHub], SensorEntity):
    """A hub sensor rendering one description."""

    entity_description: FarmResilienceSensorEntityDescription

    @property
    def native_value(self) -> StateType:
        """Return the sensor's value from the snapshot."""
        return self.entity_description.value_fn(self.coordinator.data)

    @property
    def extra_state_attributes(self) -> dict[str, Any]:
        """Return the sensor's attributes from the snapshot."""
        return self.entity_description.attributes_fn(self.coordinator.data)


class FarmAgentSensor(FarmAgentEntity, SensorEntity):
    """An agent sensor rendering one description; unknown until a valid health arrives."""

    entity_description: FarmAgentSensorEntityDescription
    # Lists that change with every health payload: shown, not kept in the recorder.
    _unrecorded_attributes = frozenset({"types", "workers", "objectives"})

    @property
    def native_value(self) -> StateType:
        """Return the figure from the last valid health payload."""
        health = self.coordinator.data.health
        return None if health is None else self.entity_description.value_fn(health)

    @property
    def extra_state_attributes(self) -> dict[str, Any]:
        """Return the figure's details from the last valid health payload."""
        health = self.coordinator.data.health
        return {} if health is None else self.entity_description.attributes_fn(health)
