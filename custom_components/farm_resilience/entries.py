"""The two kinds of config entries of the domain: the hub and one per edge agent."""

from __future__ import annotations

from typing import Any

from homeassistant.config_entries import ConfigEntry

from .agent_link import AgentLink
from .const import CONF_AGENT_ID
from .hub import FarmResilienceHub

# Platforms and diagnostics serve both kinds; they tell them apart by the runtime data.
type FarmResilienceEntry = ConfigEntry[FarmResilienceHub | AgentLink]


def is_agent_entry(entry: ConfigEntry[Any]) -> bool:
    """Return whether an entry of this domain is an agent entry (`agent_id` in its data)."""
    return CONF_AGENT_ID in entry.data
