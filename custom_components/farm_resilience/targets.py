"""What a controllable call reaches: its targets resolved to followed entities, its transition."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from homeassistant.const import ATTR_ENTITY_ID, ENTITY_MATCH_ALL
from homeassistant.core import HomeAssistant, ServiceCall, callback
from homeassistant.helpers.service import async_extract_referenced_entity_ids

from .const import CONTROLLABLE_DOMAINS


@callback
def is_controllable(event_data: Mapping[str, Any]) -> bool:
    """Let through only calls to controllable domains: a frozenset lookup per call."""
    return event_data["domain"] in CONTROLLABLE_DOMAINS


def _target_data(service_data: Mapping[str, Any]) -> dict[str, Any]:
    """Return the call's data with a comma-separated entity_id string split into a list."""
    entity_ids = service_data.get(ATTR_ENTITY_ID)
    if isinstance(entity_ids, str) and "," in entity_ids:
        return {**service_data, ATTR_ENTITY_ID: [e.strip() for e in entity_ids.split(",")]}
    return dict(service_data)


def transition_s(domain: str, service_data: Mapping[str, Any]) -> float:
    """Return how long a light may take on purpose (its `transition`), 0 for anything else."""
    transition = service_data.get("transition") if domain == "light" else None
    if isinstance(transition, int | float) and not isinstance(transition, bool):
        return max(0.0, float(transition))
    return 0.0


def followed_targets(
    hass: HomeAssistant, domain: str, service_data: Mapping[str, Any], followed: Collection[str]
) -> set[str]:
    """Resolve entity, device, area, floor and label targets to followed entities of `domain`."""
    data = _target_data(service_data)
    prefix = f"{domain}."
    if data.get(ATTR_ENTITY_ID) == ENTITY_MATCH_ALL:
        return {e for e in followed if e.startswith(prefix)}
    selected = async_extract_referenced_entity_ids(hass, ServiceCall(hass, domain, "", data))
    entity_ids = selected.referenced | selected.indirectly_referenced
    return {e for e in entity_ids if e.startswith(prefix) and e in followed}
