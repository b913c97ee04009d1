"""Farm Resilience: truthful command success, latency, outages, staleness and edge agents."""

from __future__ import annotations

from homeassistant.components import mqtt
from homeassistant.const import Platform
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import ConfigEntryNotReady
from homeassistant.helpers import config_validation as cv
from homeassistant.helpers.dispatcher import async_dispatcher_send
from homeassistant.helpers.typing import ConfigType

from .agent_link import AgentLink, async_join_discovery_device
from .const import DOMAIN, SIGNAL_AGENT_UPDATE
from .entries import (
    AgentConfigEntry,
    FarmResilienceConfigEntry,
    HubConfigEntry,
    is_agent_entry,
    is_hub_entry,
)
from .hub import FarmResilienceHub
from .issues import async_clear_device_issues, async_clear_storage_issue
from .services import async_setup_services

PLATFORMS = [Platform.BINARY_SENSOR, Platform.SENSOR]
CONFIG_SCHEMA = cv.config_entry_only_config_schema(DOMAIN)


async def async_setup(hass: HomeAssistant, config: ConfigType) -> bool:
    """Register the actions, which work on whichever hub entry is loaded."""
    async_setup_services(hass)
    return True


async def async_setup_entry(hass: HomeAssistant, entry: FarmResilienceConfigEntry) -> bool:
    """Start the hub, or follow one edge agent, and their entities."""
    if is_agent_entry(entry):
        entry.runtime_data = await _async_start_agent_link(hass, entry)
    else:
        entry.runtime_data = await _async_start_hub(hass, entry)
    await hass.config_entries.async_forward_entry_setups(entry, PLATFORMS)
    if is_agent_entry(entry):
        async_dispatcher_send(hass, SIGNAL_AGENT_UPDATE)  # the hub may count it now
    return True


async def _async_start_hub(hass: HomeAssistant, entry: HubConfigEntry) -> FarmResilienceHub:
    """Load the hub's stored window and start measuring; saved options reload it."""
    hub = FarmResilienceHub(hass, entry)
    await hub.async_setup()
    entry.async_on_unload(entry.add_update_listener(_async_reload))
    return hub


async def _async_start_agent_link(hass: HomeAssistant, entry: AgentConfigEntry) -> AgentLink:
    """Subscribe to the agent's topics through Home Assistant's MQTT integration."""
    if not await mqtt.async_wait_for_mqtt_client(hass):
        raise ConfigEntryNotReady(translation_domain=DOMAIN, translation_key="mqtt_not_ready")
    async_join_discovery_device(hass, entry)
    # No reload on update: discovery updates an agent entry's discovery keys.
    link = AgentLink(hass, entry)
    await link.async_start()
    entry.async_on_unload(link.async_stop)
    return link


async def async_unload_entry(hass: HomeAssistant, entry: FarmResilienceConfigEntry) -> bool:
    """Stop the hub (writing its window to storage) or the agent link."""
    unload_ok = await hass.config_entries.async_unload_platforms(entry, PLATFORMS)
    if unload_ok and is_hub_entry(entry):
        await entry.runtime_data.async_unload()
    return unload_ok


async def async_remove_entry(hass: HomeAssistant, entry: FarmResilienceConfigEntry) -> None:
    """Take the hub's repair issues with it: nothing watches those devices any more."""
    if is_hub_entry(entry):
        async_clear_device_issues(hass)
        async_clear_storage_issue(hass)


async def _async_reload(hass: HomeAssistant, entry: FarmResilienceConfigEntry) -> None:
    """Apply the hub's changed options by reloading: every part is built from them."""
    await hass.config_entries.async_reload(entry.entry_id)
