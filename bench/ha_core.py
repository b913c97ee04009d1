"""A real Home Assistant core in this process, without pytest and without mocks.

The same steps as HA's own bootstrap (`async_from_config_dict`) minus logging set-up,
configuration.yaml and the default integrations: the registries, config entries and
custom integrations load for real from a throwaway config folder, then the core
integration is set up and HA is started. Custom integrations come from the
`custom_components` package on the path: this repository's, when run from its root.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar

from homeassistant import bootstrap, loader, runner
from homeassistant.config_entries import SOURCE_USER, ConfigEntries, ConfigEntry
from homeassistant.core import HomeAssistant
from homeassistant.core_config import async_process_ha_core_config
from homeassistant.setup import async_setup_component

_T = TypeVar("_T")


def run_in_home_assistant_loop(main: Callable[[], Awaitable[_T]]) -> _T:
    """Run `main()` on an event loop set up as HA's runner sets up its own."""
    asyncio.set_event_loop_policy(runner.HassEventLoopPolicy(False))
    loop = asyncio.new_event_loop()
    try:
        asyncio.set_event_loop(loop)
        return loop.run_until_complete(main())
    finally:
        loop.run_until_complete(loop.shutdown_default_executor())
        asyncio.set_event_loop(None)
        loop.close()


def _make_config_dir(config_dir: Path) -> None:
    config_dir.mkdir(parents=True, exist_ok=True)
    (config_dir / "configuration.yaml").touch()


async def start_home_assistant(config_dir: Path) -> HomeAssistant:
    """A running HA core with its registries, config entries and the custom integrations."""
    # Custom integrations make HA warn once each that they are not HA's own.
    logging.getLogger("homeassistant.loader").setLevel(logging.ERROR)
    await asyncio.get_running_loop().run_in_executor(None, _make_config_dir, config_dir)
    hass = HomeAssistant(str(config_dir))
    loader.async_setup(hass)
    hass.config.skip_pip = True
    hass.config_entries = ConfigEntries(hass, {})
    await loader.async_get_custom_components(hass)
    await bootstrap.async_load_base_functionality(hass)
    await async_process_ha_core_config(
        hass, {"name": "Bench", "time_zone": "UTC", "unit_system": "metric"}
    )
    if not await async_setup_component(hass, "homeassistant", {}):
        raise RuntimeError("Home Assistant's core integration did not set up")
    await hass.async_start()
    return hass


async def stop_home_assistant(hass: HomeAssistant) -> None:
    await hass.async_stop()


def config_entry(domain: str, title: str, options: dict[str, Any]) -> ConfigEntry[Any]:
    """A config entry as the user flow would create it."""
    return ConfigEntry(
        data={},
        discovery_keys=MappingProxyType({}),
        domain=domain,
        minor_version=1,
        options=options,
        source=SOURCE_USER,
        subentries_data=None,
        title=title,
        unique_id="hub",
        version=1,
    )
