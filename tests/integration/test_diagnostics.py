"""Diagnostics: options, window figures, worst offenders, pending commands, health."""

from __future__ import annotations

from freezegun.api import FrozenDateTimeFactory
from homeassistant.core import HomeAssistant
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator
from syrupy.assertion import SnapshotAssertion

from .sim import Behaviour, Farm
from .support import advance, call, download_diagnostics


async def test_diagnostics_show_figures_offenders_pending_commands_and_health(
    hass: HomeAssistant,
    farm: Farm,
    hub: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
    hass_client: ClientSessionGenerator,
    snapshot: SnapshotAssertion,
) -> None:
    farm.default = Behaviour(delay=lambda rng: 1.25)
    farm.behaviour["switch.pump_2"] = Behaviour(drop_probability=1.0)
    await call(hass, "switch.turn_on", entity_id="switch.pump_1")
    await call(hass, "switch.turn_on", entity_id="switch.pump_2")
    await advance(hass, freezer, 1.25)
    await advance(hass, freezer, 4.0)
    await call(hass, "valve.open_valve", entity_id="valve.field_1")
    farm.entities["cover.vent"].set_available(False)
    farm.entities["light.grow_light"].set_available(False)
    await advance(hass, freezer, 0.5)

    assert await download_diagnostics(hass, hass_client, hub) == snapshot
    await advance(hass, freezer, 5.0)  # let the valve answer before the test ends
