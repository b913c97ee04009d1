"""Entities removed while their command is pending, and added again later."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from freezegun.api import FrozenDateTimeFactory
from homeassistant.const import Platform
from homeassistant.core import Event, HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import entity_registry as er
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.farm_resilience.const import DEFAULT_OPTIONS, DOMAIN

from .sim import Behaviour, Farm, async_add_to_farm
from .support import DEGRADED, FAILED, RATE, UNAVAILABLE_DEVICES, advance, call, errors_logged

PUMP = "switch.pump_1"

type Removal = Callable[[HomeAssistant, Farm], Awaitable[None]]


async def remove_from_registry(hass: HomeAssistant, farm: Farm) -> None:
    """The user deletes the entity (Settings -> Entities -> Delete)."""
    er.async_get(hass).async_remove(PUMP)
    await hass.async_block_till_done()


async def remove_by_integration(hass: HomeAssistant, farm: Farm) -> None:
    """The device's integration removes the entity; its registry entry keeps it `unavailable`."""
    await farm.entities[PUMP].async_remove()
    await hass.async_block_till_done()


async def remove_state(hass: HomeAssistant, farm: Farm) -> None:
    """The entity's state leaves the state machine while the entity object lives on."""
    hass.states.async_remove(PUMP)
    await hass.async_block_till_done()


async def add_again(hass: HomeAssistant, farm: Farm) -> None:
    """The device comes back: its integration adds the entity again (same unique id)."""
    if PUMP in farm.entities:
        farm.entities[PUMP].async_write_ha_state()  # only its state was removed
    else:
        await async_add_to_farm(hass, farm, {"Pump house": [(Platform.SWITCH, "pump_1", "Pump 1")]})
    await hass.async_block_till_done()
    assert hass.states.get(PUMP) is not None


REMOVALS = [remove_from_registry, remove_by_integration, remove_state]
TRACKING = [
    dict(DEFAULT_OPTIONS),
    {**DEFAULT_OPTIONS, "tracked_entities": ["switch.pump_1", "switch.pump_2"]},
]


def outcomes(events: list[Any]) -> list[tuple[str, str, float | None]]:
    """Return (entity_id, outcome, latency_s) of captured command events."""
    return [(e.data["entity_id"], e.data["outcome"], e.data["latency_s"]) for e in events]


@pytest.mark.parametrize("options", TRACKING, ids=["every_entity", "listed_entities"])
@pytest.mark.parametrize("remove", REMOVALS, ids=lambda removal: removal.__name__)
async def test_entity_removed_while_its_command_is_pending_ends_unavailable_and_works_when_back(
    hass: HomeAssistant,
    command_events: list[Event[Any]],
    farm: Farm,
    hub: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
    caplog: pytest.LogCaptureFixture,
    remove: Removal,
) -> None:
    farm.default = Behaviour(delay=lambda rng: 3.0)
    await call(hass, "switch.turn_on", entity_id=PUMP)
    await advance(hass, freezer, 1.0)

    await remove(hass, farm)

    assert outcomes(command_events) == [(PUMP, "unavailable", None)]
    assert hub.runtime_data.tracker.pending == {}
    await advance(hass, freezer, 10.0)  # the device's late answer and the deadline change nothing
    assert len(command_events) == 1
    assert hass.states.get(RATE).state == "0.0"
    assert hass.states.get(FAILED).state == "1"
    assert hass.states.get(FAILED).attributes["unavailable"] == 1
    assert hass.states.get(FAILED).attributes["timeout"] == 0

    await add_again(hass, farm)
    await call(hass, "switch.toggle", entity_id=PUMP)
    await advance(hass, freezer, 3.0)

    assert outcomes(command_events)[1:] == [(PUMP, "success", 3.0)]
    assert hass.states.get(RATE).state == "50.0"
    assert hass.states.get(RATE).attributes["commands"] == 2
    assert hass.states.get(FAILED).state == "1"
    assert hass.states.get(UNAVAILABLE_DEVICES).state == "0"
    assert hass.states.get(DEGRADED).state == "off"
    assert errors_logged(caplog) == []


@pytest.mark.parametrize("remove", REMOVALS, ids=lambda removal: removal.__name__)
async def test_removed_entity_no_longer_counts_towards_its_device_and_counts_again_when_back(
    hass: HomeAssistant,
    farm: Farm,
    hub: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
    remove: Removal,
) -> None:
    farm.entities["switch.pump_2"].set_available(False)
    await remove(hass, farm)
    await advance(hass, freezer, 61.0)

    # A removed entity leaves its device; one that its integration removed stays, unavailable.
    tracked = 2 if remove is remove_by_integration else 1
    assert hass.states.get(UNAVAILABLE_DEVICES).attributes["devices"] == ["Pump house"]
    assert hass.states.get(DEGRADED).attributes["reasons"] == [
        f"Pump house: down for more than 60 s (all {tracked} tracked entities unavailable)"
    ]

    await add_again(hass, farm)

    assert hass.states.get(UNAVAILABLE_DEVICES).state == "0"
    assert hass.states.get(DEGRADED).state == "off"


@pytest.mark.parametrize("remove", REMOVALS, ids=lambda removal: removal.__name__)
async def test_send_command_to_an_entity_removed_while_pending_reports_unavailable_promptly(
    hass: HomeAssistant,
    command_events: list[Event[Any]],
    farm: Farm,
    hub: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
    caplog: pytest.LogCaptureFixture,
    remove: Removal,
) -> None:
    farm.default = Behaviour(drop_probability=1.0)
    task = asyncio.create_task(
        hass.services.async_call(
            DOMAIN,
            "send_command",
            {"entity_id": PUMP, "action": "switch.turn_on", "retries": 2, "timeout": 5},
            blocking=True,
            return_response=True,
        )
    )
    await advance(hass, freezer, 1.0)
    await remove(hass, farm)

    # Retries after 1 s and 2 s find no entity: each attempt ends at once, not at its timeout.
    for _ in range(4):
        await advance(hass, freezer, 1.0)
    assert task.done()
    with pytest.raises(HomeAssistantError, match=r"switch.pump_1 \(unavailable after 3 attempts\)"):
        await task
    assert outcomes(command_events) == [(PUMP, "unavailable", None)] * 3
    assert hass.states.get(FAILED).attributes["unavailable"] == 3
    assert errors_logged(caplog) == []


@pytest.mark.parametrize("remove", REMOVALS, ids=lambda removal: removal.__name__)
async def test_command_to_a_tracked_entity_that_was_removed_counts_as_unavailable(
    hass: HomeAssistant,
    command_events: list[Event[Any]],
    farm: Farm,
    hub: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
    remove: Removal,
) -> None:
    farm.default = Behaviour(drop_probability=1.0)  # an entity object left behind stays silent
    await remove(hass, farm)

    await call(hass, "switch.turn_on", entity_id=PUMP)
    await call(hass, "switch.toggle", entity_id=PUMP)
    await advance(hass, freezer, 10.0)

    # turn_on had an effect to show and could not; toggle has none without a state (not counted).
    assert outcomes(command_events) == [(PUMP, "unavailable", None)]
    assert hass.states.get(RATE).attributes["commands"] == 1
    assert hass.states.get(FAILED).attributes["unavailable"] == 1
