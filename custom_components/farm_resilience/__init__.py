"""Farm Resilience: truthful command success, latency, outages and staleness."""

from __future__ import annotations

from homeassistant.const import Platform
from homeassistant.core import HomeAssistant
from homeassistant.helpers import config_validation as cv
from homeassistant.helpers.typing import ConfigType

from .const import DOMAIN
from .hub import FarmResilienceConfigEntry, FarmResilienceHub
from .services import async_setup_services

PLATFORMS = [Platform.BINARY_SENSOR, Platform.SENSOR]
CONFIG_SCHEMA = cv.config_entry_only_config_schema(DOMAIN)


async def async_setup(hass: HomeAssistant, config: ConfigType) -> bool:
    """Register the actions, which work on whichever hub entry is loaded."""
    async_setup_services(hass)
    return True


async def async_setup_entry(hass: HomeAssistant, entry: FarmResilienceConfigEntry) -> bool:
    """Start the hub and its entities."""
    hub = FarmResilienceHub(hass, entry)
    await hub.async_setup()
    entry.runtime_data = hub
    entry.async_on_unload(entry.add_update_listener(_async_reload))
    await hass.config_entries.async_forward_entry_setups(entry, PLATFORMS)
    return True


async def async_unload_entry(hass: HomeAssistant, entry: FarmResilienceConfigEntry) -> bool:
    """Stop the hub, writing its window to storage."""
    if unload_ok := await hass.config_entries.async_unload_platforms(entry, PLATFORMS):
        await entry.runtime_data.async_unload()
    return unload_ok


async def _async_reload(hass: HomeAssistant, entry: FarmResilienceConfigEntry) -> None:
    """Apply changed options by reloading: every part is built from them."""
    await hass.config_entries.async_reload(entry.entry_id)
