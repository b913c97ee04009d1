"""Binary sensors: the hub's degraded verdict and broker link; an agent's connectivity, problem."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from homeassistant.components.binary_sensor import (
    BinarySensorDeviceClass,
    BinarySensorEntity,
    BinarySensorEntityDescription,
)
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .agent_availability import AgentState
from .entity import FarmAgentEntity, FarmResilienceEntity
from .entries import FarmResilienceConfigEntry, is_agent_entry
from .hub import FarmResilienceHub

PARALLEL_UPDATES = 0

DEGRADED = BinarySensorEntityDescription(
    key="degraded",
    translation_key="degraded",
    device_class=BinarySensorDeviceClass.PROBLEM,
)
BROKER_CONNECTED = BinarySensorEntityDescription(
    key="broker_connected",
    translation_key="broker_connected",
    device_class=BinarySensorDeviceClass.CONNECTIVITY,
)


@dataclass(frozen=True, kw_only=True)
class FarmAgentBinarySensorEntityDescription(BinarySensorEntityDescription):
    """An agent binary sensor: state, attributes and availability read from the agent's state."""

    is_on_fn: Callable[[AgentState], bool | None]
    attributes_fn: Callable[[AgentState], dict[str, Any]] = lambda state: {}
    available_fn: Callable[[AgentState], bool] = lambda state: state.available


def _problem_attributes(state: AgentState) -> dict[str, Any]:
    """Return the agent's reported status and problems, plain data for attributes."""
    if state.health is None:
        return {}
    return {"status": state.health.status, "problems": list(state.health.problems)}


# Keys are those of the contract vectors' `expect` (tests/contract/health_vectors.json).
AGENT_BINARY_SENSORS: tuple[FarmAgentBinarySensorEntityDescription, ...] = (
    FarmAgentBinarySensorEntityDescription(
        key="connectivity",
        translation_key="connectivity",
        device_class=BinarySensorDeviceClass.CONNECTIVITY,
        is_on_fn=lambda state: state.online,
        # Off is a known state: only a lost broker connection leaves nothing to say.
        available_fn=lambda state: state.mqtt_connected,
    ),
    FarmAgentBinarySensorEntityDescription(
        key="backend_problem",
        translation_key="backend_problem",
        device_class=BinarySensorDeviceClass.PROBLEM,
        is_on_fn=lambda state: None if state.health is None else state.health.has_problem,
        attributes_fn=_problem_attributes,
    ),
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: FarmResilienceConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the hub's degraded binary sensor, or an agent's binary sensors."""
    if is_agent_entry(entry):
        link = entry.runtime_data
        async_add_entities(
            FarmAgentBinarySensor(link, description) for description in AGENT_BINARY_SENSORS
        )
    else:
        hub = entry.runtime_data
        entities: list[BinarySensorEntity] = [FarmResilienceDegradedSensor(hub, DEGRADED)]
        if hub.broker is not None:
            entities.append(FarmResilienceBrokerSensor(hub, BROKER_CONNECTED))
        async_add_entities(entities)


class FarmResilienceDegradedSensor(FarmResilienceEntity[FarmResilienceHub], BinarySensorEntity):
    """On when commands, devices, sensors or agents miss their targets."""

    @property
    def is_on(self) -> bool:
        """Return whether any reason exists."""
        return bool(self.coordinator.data.reasons)

    @property
    def extra_state_attributes(self) -> dict[str, Any]:
        """Return the reasons in plain words."""
        return {"reasons": list(self.coordinator.data.reasons)}


class FarmResilienceBrokerSensor(FarmResilienceEntity[FarmResilienceHub], BinarySensorEntity):
    """On while Home Assistant is connected to the MQTT broker; uptime and reconnects."""

    @property
    def is_on(self) -> bool | None:
        """Return whether Home Assistant is connected to the broker."""
        broker = self.coordinator.data.broker
        return None if broker is None else broker.connected

    @property
    def extra_state_attributes(self) -> dict[str, Any]:
        """Return the link's uptime (%) and reconnects over the window."""
        broker = self.coordinator.data.broker
        if broker is None:
            return {}
        uptime = broker.uptime_pct
        return {
            "uptime_pct": None if uptime is None else round(uptime, 3),
            "reconnects": broker.reconnects,
        }


class FarmAgentBinarySensor(FarmAgentEntity, BinarySensorEntity):
    """An agent binary sensor rendering one description."""

    entity_description: FarmAgentBinarySensorEntityDescription

    @property
    def available(self) -> bool:
        """Return whether this sensor can tell anything now."""
        return self.entity_description.available_fn(self.coordinator.data)

    @property
    def is_on(self) -> bool | None:
        """Return the sensor's state from the agent's state."""
        return self.entity_description.is_on_fn(self.coordinator.data)

    @property
    def extra_state_attributes(self) -> dict[str, Any]:
        """Return the sensor's attributes from the agent's state."""
        return self.entity_description.attributes_fn(self.coordinator.data)
