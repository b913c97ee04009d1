"""Groups and wrappers: entities that stand for other entities and command those instead.

A light group's `light.turn_on` calls `light.turn_on` on its members; a switch
shown as a light (`switch_as_x`) calls `switch.turn_on` on the switch. Those
nested calls carry the context of the call on top. Only the entities at the
bottom (the leaves) are devices: a command is counted once, on them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from homeassistant.const import ATTR_ENTITY_ID
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import entity_registry as er

# Integrations whose entities only forward commands to other entities.
VIRTUAL_PLATFORMS = frozenset({"group", "switch_as_x"})
SWITCH_AS_X = "switch_as_x"


@callback
def is_virtual(hass: HomeAssistant, entity_id: str) -> bool:
    """Return whether the entity is a group or a wrapper rather than a device of its own.

    A group is recognised as Home Assistant recognises one (a state attribute
    `entity_id` listing the members: groups set up in YAML have no registry
    entry); a wrapper by its integration in the entity registry.
    """
    entry = er.async_get(hass).async_get(entity_id)
    if entry is not None and entry.platform in VIRTUAL_PLATFORMS:
        return True
    state = hass.states.get(entity_id)
    return state is not None and isinstance(state.attributes.get(ATTR_ENTITY_ID), list | tuple)


@callback
def members(hass: HomeAssistant, entity_id: str) -> list[str]:
    """Return the entities a group or wrapper forwards its commands to (none for a device)."""
    registry = er.async_get(hass)
    entry = registry.async_get(entity_id)
    if entry is not None and entry.platform == SWITCH_AS_X:
        options: Mapping[str, Any] = entry.options.get(SWITCH_AS_X) or {}
        wrapped = options.get(ATTR_ENTITY_ID)
        return [wrapped] if isinstance(wrapped, str) else []
    state = hass.states.get(entity_id)
    listed = state.attributes.get(ATTR_ENTITY_ID) if state is not None else None
    return [member for member in listed or () if isinstance(member, str)]


@callback
def leaves(hass: HomeAssistant, entity_id: str) -> list[str]:
    """Return the devices behind an entity: itself, or the leaves of a group or wrapper."""
    found: list[str] = []
    seen: set[str] = set()
    todo = [entity_id]
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        if is_virtual(hass, current):
            todo.extend(reversed(members(hass, current)))
        else:
            found.append(current)
    return found
