"""Commands in flight when the options are saved (a reload) or Home Assistant stops."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from freezegun.api import FrozenDateTimeFactory
from homeassistant.core import Event, HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.farm_resilience.const import DOMAIN

from .sim import Behaviour, Farm
from .support import RATE, advance, call, save_options


async def reload_by_saving_options(hass: HomeAssistant, hub: MockConfigEntry) -> None:
    """Save the options as a user does: the hub reloads, with a new tracker."""
    old = hub.runtime_data
    await save_options(hass, hub, success_target=98.0)
    assert hub.runtime_data is not old


def start_send_command(hass: HomeAssistant, data: dict[str, Any]) -> asyncio.Task[Any]:
    """Start send_command in the background, as an automation does."""
    return asyncio.create_task(
        hass.services.async_call(DOMAIN, "send_command", data, blocking=True, return_response=True)
    )


async def until_done(
    hass: HomeAssistant, freezer: FrozenDateTimeFactory, task: asyncio.Task[Any]
) -> Any:
    """Move time in half-second steps until the task is done; return its result."""
    for _ in range(60):
        if task.done():
            break
        await advance(hass, freezer, 0.5)
    return await task


async def test_command_in_flight_during_an_options_save_keeps_its_outcome(
    hass: HomeAssistant,
    command_events: list[Event[Any]],
    farm: Farm,
    hub: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
) -> None:
    farm.default = Behaviour(delay=lambda rng: 3.0)

    await call(hass, "switch.turn_on", entity_id="switch.pump_1")
    await advance(hass, freezer, 1.0)
    await reload_by_saving_options(hass, hub)
    await advance(hass, freezer, 2.0)

    assert [(e.data["outcome"], e.data["latency_s"]) for e in command_events] == [("success", 3.0)]
    assert hass.states.get(RATE).state == "100.0"


async def test_command_that_lands_during_the_reload_is_judged_on_adoption(
    hass: HomeAssistant,
    command_events: list[Event[Any]],
    farm: Farm,
    hub: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
) -> None:
    farm.default = Behaviour(delay=lambda rng: 1.0)
    await call(hass, "switch.turn_on", entity_id="switch.pump_1")
    await advance(hass, freezer, 0.5)
    assert await hass.config_entries.async_unload(hub.entry_id)
    await advance(hass, freezer, 0.5)  # the pump turns on while no hub listens
    assert hass.states.get("switch.pump_1").state == "on"

    assert await hass.config_entries.async_setup(hub.entry_id)
    await hass.async_block_till_done()

    assert [(e.data["outcome"], e.data["latency_s"]) for e in command_events] == [("success", 1.0)]


async def test_send_command_across_an_options_save_succeeds_and_sends_once(
    hass: HomeAssistant, farm: Farm, hub: MockConfigEntry, freezer: FrozenDateTimeFactory
) -> None:
    farm.default = Behaviour(delay=lambda rng: 3.0)
    task = start_send_command(hass, {"entity_id": "valve.field_1", "action": "valve.open_valve"})
    await advance(hass, freezer, 1.0)

    await reload_by_saving_options(hass, hub)
    response = await until_done(hass, freezer, task)

    assert response == {
        "entities": {"valve.field_1": {"outcome": "success", "attempts": 1, "latency_s": 3.0}}
    }
    assert [record.action for record in farm.records] == ["open_valve"]


async def test_send_command_retry_after_an_options_save_is_judged_by_the_new_hub(
    hass: HomeAssistant, farm: Farm, hub: MockConfigEntry, freezer: FrozenDateTimeFactory
) -> None:
    farm.behaviour["valve.field_1"] = Behaviour(drop_first=1, delay=lambda rng: 0.5)
    task = start_send_command(
        hass, {"entity_id": "valve.field_1", "action": "valve.open_valve", "timeout": 2}
    )
    await advance(hass, freezer, 2.0)  # the first attempt times out
    await advance(hass, freezer, 0.5)

    await reload_by_saving_options(hass, hub)  # during the backoff
    response = await until_done(hass, freezer, task)

    assert response["entities"]["valve.field_1"]["outcome"] == "success"
    assert response["entities"]["valve.field_1"]["attempts"] == 2
    assert len(farm.records) == 2


async def test_home_assistant_stopping_mid_wait_is_no_failure_and_sends_nothing_again(
    hass: HomeAssistant,
    command_events: list[Event[Any]],
    farm: Farm,
    hub: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
) -> None:
    farm.default = Behaviour(drop_probability=1.0)
    task = start_send_command(hass, {"entity_id": "valve.field_1", "action": "valve.open_valve"})
    await advance(hass, freezer, 1.0)

    await hass.async_stop()
    with pytest.raises(HomeAssistantError) as raised:
        await until_done(hass, freezer, task)

    assert raised.value.translation_placeholders["entities"] == (
        "valve.field_1 (interrupted after 1 attempts)"
    )
    assert [record.action for record in farm.records] == ["open_valve"]
    assert command_events == []
