"""Saving the hub's options as a user does: through the options flow, which reloads the hub."""

from __future__ import annotations

from typing import Any

from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.farm_resilience.const import DEFAULT_OPTIONS

# The fields of the options form (the topic prefix is reconfigured, not an option there).
FORM_FIELDS = [key for key in DEFAULT_OPTIONS if key != "topic_prefix"]


async def save_options(hass: HomeAssistant, entry: MockConfigEntry, **changes: Any) -> None:
    """Open the hub's options, change `changes` (nothing: save as they are), and submit."""
    current = {**DEFAULT_OPTIONS, **entry.options}
    result = await hass.config_entries.options.async_init(entry.entry_id)
    assert result["type"] is FlowResultType.FORM
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {**{key: current[key] for key in FORM_FIELDS}, **changes}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY, result.get("errors")
    await hass.async_block_till_done()
