"""Base entities: one for the hub device, one for an edge agent's device."""

from __future__ import annotations

from homeassistant.helpers.device_registry import DeviceEntryType, DeviceInfo
from homeassistant.helpers.entity import Entity, EntityDescription

from .agent_link import AgentLink
from .const import AGENT_MODEL, DOMAIN, HUB_NAME
from .hub import FarmResilienceHub


class FarmResilienceEntity(Entity):
    """An entity of the hub device, refreshed whenever the hub's snapshot changes."""

    _attr_has_entity_name = True
    _attr_should_poll = False

    def __init__(self, hub: FarmResilienceHub, description: EntityDescription) -> None:
        """Attach the entity to the hub device."""
        self.hub = hub
        self.entity_description = description
        self._attr_unique_id = f"{hub.entry.entry_id}_{description.key}"
        self._attr_device_info = DeviceInfo(
            identifiers={(DOMAIN, hub.entry.entry_id)},
            name=HUB_NAME,
            manufacturer=HUB_NAME,
            model="Hub",
            entry_type=DeviceEntryType.SERVICE,
        )

    async def async_added_to_hass(self) -> None:
        """Follow the hub's snapshot."""
        await super().async_added_to_hass()
        self.async_on_remove(self.hub.async_add_listener(self.async_write_ha_state))


class FarmAgentEntity(Entity):
    """An entity of an agent's device (named after its agent_id), refreshed by its link."""

    _attr_has_entity_name = True
    _attr_should_poll = False

    def __init__(self, link: AgentLink, description: EntityDescription) -> None:
        """Attach the entity to the agent's device."""
        self.link = link
        self.entity_description = description
        self._attr_unique_id = f"agent_{link.agent_id}_{description.key}"
        self._attr_device_info = DeviceInfo(
            identifiers={(DOMAIN, f"agent_{link.agent_id}")},
            name=link.agent_id,
            manufacturer=HUB_NAME,
            model=AGENT_MODEL,
        )

    @property
    def available(self) -> bool:
        """Return whether the agent's figures are current (online, broker connected)."""
        return self.link.available

    async def async_added_to_hass(self) -> None:
        """Follow the agent's link."""
        await super().async_added_to_hass()
        self.async_on_remove(self.link.async_add_listener(self.async_write_ha_state))
