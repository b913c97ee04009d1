"""Entity registry updates the tracker follows: renamed and disabled entities.

A renamed entity is the same device: it stays tracked (also in an explicit
`tracked_entities` list, which is updated) and keeps its pending command. A
disabled entity leaves Home Assistant on purpose: its pending command ends
without an outcome, never as a failure.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from homeassistant.core import CALLBACK_TYPE, Event, HomeAssistant, callback
from homeassistant.helpers import entity_registry as er

from .const import CONF_TRACKED_ENTITIES, DOMAIN

if TYPE_CHECKING:
    from .tracker import CommandTracker


@callback
def _is_rename_or_disable(event_data: Mapping[str, Any]) -> bool:
    """Let through only updates that rename an entity or change whether it is disabled."""
    return event_data["action"] == "update" and (
        "old_entity_id" in event_data or "disabled_by" in event_data["changes"]
    )


class RegistryFollower:
    """Tells the tracker about renamed and disabled entities."""

    def __init__(self, hass: HomeAssistant, tracker: CommandTracker) -> None:
        """Remember whom to tell; `async_start` listens."""
        self.hass = hass
        self.tracker = tracker

    @callback
    def async_start(self) -> CALLBACK_TYPE:
        """Listen to entity registry updates; the returned callback stops listening."""
        return self.hass.bus.async_listen(
            er.EVENT_ENTITY_REGISTRY_UPDATED,
            self._async_on_update,
            event_filter=_is_rename_or_disable,
        )

    @callback
    def _async_on_update(self, event: Event[er.EventEntityRegistryUpdatedData]) -> None:
        """Move a renamed entity's tracking; end a disabled entity's command."""
        data: Mapping[str, Any] = event.data
        entity_id: str = data["entity_id"]
        if (old := data.get("old_entity_id")) is not None:
            self.tracker.async_entity_renamed(old, entity_id)
            self._async_rename_in_options(old, entity_id)
        entry = er.async_get(self.hass).async_get(entity_id)
        if "disabled_by" in data["changes"] and entry is not None and entry.disabled:
            self.tracker.async_entity_disabled(entity_id)

    @callback
    def _async_rename_in_options(self, old: str, new: str) -> None:
        """Replace the old entity id in the hub's explicit tracked list (this reloads the hub)."""
        for entry in self.hass.config_entries.async_entries(DOMAIN):
            tracked = entry.options.get(CONF_TRACKED_ENTITIES)
            if isinstance(tracked, list) and old in tracked:
                renamed = [new if entity_id == old else entity_id for entity_id in tracked]
                self.hass.config_entries.async_update_entry(
                    entry, options={**entry.options, CONF_TRACKED_ENTITIES: renamed}
                )
