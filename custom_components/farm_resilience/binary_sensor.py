"""Binary sensors: the hub's degraded verdict; an agent's connectivity and backend problem."""

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

from .agent_link import AgentLink
from .entity import FarmAgentEntity, FarmResilienceEntity
from .entries import FarmResilienceEntry

PARALLEL_UPDATES = 0

DEGRADED = BinarySensorEntityDescription(
    key="degraded",
    translation_key="degraded",
    device_class=BinarySensorDeviceClass.PROBLEM,
)


@dataclass(frozen=True, kw_only=True)
class FarmAgentBinarySensorEntityDescription(BinarySensorEntityDescription):
    """An agent binary sensor: its state, attributes and availability read from the link."""

    is_on_fn: Callable[[AgentLink], bool | None]
    attributes_fn: Callable[[AgentLink], dict[str, Any]] = lambda link: {}
    available_fn: Callable[[AgentLink], bool] = lambda link: link.available


def _problem_attributes(link: AgentLink) -> dict[str, Any]:
    """Return the agent's reported status and problems, plain data for attributes."""
    if link.health is None:
        return {}
    return {"status": link.health.status, "problems": list(link.health.problems)}


# Keys are those of the contract vectors' `expect` (tests/contract/health_vectors.json).
AGENT_BINARY_SENSORS: tuple[FarmAgentBinarySensorEntityDescription, ...] = (
    FarmAgentBinarySensorEntityDescription(
        key="connectivity",
        translation_key="connectivity",
        device_class=BinarySensorDeviceClass.CONNECTIVITY,
        is_on_fn=lambda link: link.online,
        # Off is a known state: only a lost broker connection leaves nothing to say.
        available_fn=lambda link: link.mqtt_connected,
    ),
    FarmAgentBinarySensorEntityDescription(
        key="backend_problem",
        translation_key="backend_problem",
        device_class=BinarySensorDeviceClass.PROBLEM,
        is_on_fn=lambda link: None if link.health is None else link.health.has_problem,
        attributes_fn=_problem_attributes,
    ),
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: FarmResilienceEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the hub's degraded binary sensor, or an agent's binary sensors."""
    runtime = entry.runtime_data
    if isinstance(runtime, AgentLink):
        async_add_entities(
            FarmAgentBinarySensor(runtime, description) for description in AGENT_BINARY_SENSORS
        )
    else:
        async_add_entities([FarmResilienceDegradedSensor(runtime, DEGRADED)])


class FarmResilienceDegradedSensor(FarmResilienceEntity, BinarySensorEntity):
    """On when commands, devices, sensors or agents miss their targets."""

    @property
    def is_on(self) -> bool:
        """Return whether any reason exists."""
        return bool(self.hub.snapshot.reasons)

    @property
    def extra_state_attributes(self) -> dict[str, Any]:
        """Return the reasons in plain words."""
        return {"reasons": list(self.hub.snapshot.reasons)}


class FarmAgentBinarySensor(FarmAgentEntity, BinarySensorEntity):
    """An agent binary sensor rendering one description."""

    entity_description: FarmAgentBinarySensorEntityDescription

    def __init__(
        self, link: AgentLink, description: FarmAgentBinarySensorEntityDescription
    ) -> None:
        """Render `description` from the agent's link."""
        super().__init__(link, description)

    @property
    def available(self) -> bool:
        """Return whether this sensor can tell anything now."""
        return self.entity_description.available_fn(self.link)

    @property
    def is_on(self) -> bool | None:
        """Return the sensor's state from the link."""
        return self.entity_description.is_on_fn(self.link)

    @property
    def extra_state_attributes(self) -> dict[str, Any]:
        """Return the sensor's attributes from the link."""
        return self.entity_description.attributes_fn(self.link)
