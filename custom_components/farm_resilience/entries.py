"""The domain's two kinds of config entries, told apart in this one place.

The hub's entry has no `agent_id` in its data; each edge agent's entry has one
(docs/contracts.md, "Config entries"). Everything that must know which kind an
entry is asks `is_agent_entry` (or its negation `is_hub_entry`), which also
narrows the entry's type, and with it the type of its runtime data.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeIs

from homeassistant.config_entries import ConfigEntry

from .const import CONF_AGENT_ID

if TYPE_CHECKING:
    from .agent_link import AgentLink
    from .hub import FarmResilienceHub

type HubConfigEntry = ConfigEntry[FarmResilienceHub]
type AgentConfigEntry = ConfigEntry[AgentLink]
# A union of the two rather than ConfigEntry[FarmResilienceHub | AgentLink]: once
# `is_agent_entry` has answered, either branch knows its runtime data's type.
type FarmResilienceConfigEntry = HubConfigEntry | AgentConfigEntry


def is_agent_entry(entry: ConfigEntry[Any]) -> TypeIs[AgentConfigEntry]:
    """Return whether an entry of this domain follows an edge agent (`agent_id` in its data)."""
    return CONF_AGENT_ID in entry.data


def is_hub_entry(entry: ConfigEntry[Any]) -> TypeIs[HubConfigEntry]:
    """Return whether an entry of this domain is the hub (no `agent_id` in its data)."""
    return not is_agent_entry(entry)
