"""The base entity: one of the hub's, or one of an edge agent's, rendered from its coordinator."""

from __future__ import annotations

from homeassistant.helpers.entity import EntityDescription
from homeassistant.helpers.update_coordinator import CoordinatorEntity

from .agent_link import AgentLink
from .hub import FarmResilienceHub


class FarmResilienceEntity[CoordinatorT: FarmResilienceHub | AgentLink](
    CoordinatorEntity[CoordinatorT]
):
    """An entity on its coordinator's device (the hub, or an agent named after its agent_id)."""

    _attr_has_entity_name = True

    def __init__(self, coordinator: CoordinatorT, description: EntityDescription) -> None:
        """Attach the entity to the coordinator's device."""
        super().__init__(coordinator)
        self.entity_description = description
        self._attr_unique_id = f"{coordinator.unique_id_prefix}_{description.key}"
        self._attr_device_info = coordinator.device_info


class FarmAgentEntity(FarmResilienceEntity[AgentLink]):
    """An entity of an agent: its figures are current only while the agent is available."""

    @property
    def available(self) -> bool:
        """Return whether the agent's figures are current (online, broker connected, heard)."""
        return self.coordinator.data.available
