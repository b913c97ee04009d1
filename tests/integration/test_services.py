"""Actions: send_command verifies, retries with backoff and reports; reset_statistics."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import pytest
import voluptuous as vol
from freezegun.api import FrozenDateTimeFactory
from homeassistant.const import Platform
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers import area_registry as ar
from homeassistant.helpers import device_registry as dr
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.farm_resilience.const import DOMAIN

from .sim import SIM_DOMAIN, Behaviour, Farm
from .support import RATE, advance, call


async def send_command(
    hass: HomeAssistant, freezer: FrozenDateTimeFactory, data: dict[str, Any]
) -> Any:
    """Run send_command while moving time in half-second steps; return its response."""
    task = asyncio.create_task(
        hass.services.async_call(DOMAIN, "send_command", data, blocking=True, return_response=True)
    )
    # Let the first attempt reach the devices before any time passes, as it would in real life.
    for _ in range(50):
        await asyncio.sleep(0)
    for _ in range(60):
        await advance(hass, freezer, 0.5)
        if task.done():
            break
    return await task


async def test_send_command_succeeds_after_retries_on_a_flaky_device(
    hass: HomeAssistant, farm: Farm, hub: MockConfigEntry, freezer: FrozenDateTimeFactory
) -> None:
    farm.behaviour["valve.field_1"] = Behaviour(drop_first=2, delay=lambda rng: 0.5)

    response = await send_command(
        hass, freezer, {"entity_id": "valve.field_1", "action": "valve.open_valve", "timeout": 2}
    )

    assert response == {
        "entities": {"valve.field_1": {"outcome": "success", "attempts": 3, "latency_s": 0.5}}
    }
    assert hass.states.get("valve.field_1").state == "open"
    # Every attempt is a command: two timeouts and a success; waits of 1 s then 2 s between.
    received = [r.received_at for r in farm.records]
    assert [round(b - a, 3) for a, b in itertools.pairwise(received)] == [3.0, 4.0]
    assert hass.states.get(RATE).attributes["commands"] == 3


async def test_send_command_reports_each_target_and_retries_only_the_unverified(
    hass: HomeAssistant, farm: Farm, hub: MockConfigEntry, freezer: FrozenDateTimeFactory
) -> None:
    farm.behaviour["switch.pump_2"] = Behaviour(drop_first=1)

    response = await send_command(
        hass,
        freezer,
        {"entity_id": ["switch.pump_1", "switch.pump_2"], "action": "switch.turn_on"},
    )

    assert response == {
        "entities": {
            "switch.pump_1": {"outcome": "success", "attempts": 1, "latency_s": 0.0},
            "switch.pump_2": {"outcome": "success", "attempts": 2, "latency_s": 0.0},
        }
    }
    assert sorted(r.entity_id for r in farm.records) == [
        "switch.pump_1",
        "switch.pump_2",
        "switch.pump_2",
    ]


async def test_send_command_raises_when_a_dead_device_stays_unverified(
    hass: HomeAssistant, farm: Farm, hub: MockConfigEntry, freezer: FrozenDateTimeFactory
) -> None:
    farm.behaviour["valve.field_1"] = Behaviour(drop_probability=1.0)

    with pytest.raises(HomeAssistantError) as raised:
        await send_command(
            hass,
            freezer,
            {
                "entity_id": "valve.field_1",
                "action": "valve.open_valve",
                "retries": 1,
                "timeout": 1,
            },
        )

    assert raised.value.translation_key == "command_unverified"
    assert str(raised.value) == (
        "valve.open_valve could not be verified: valve.field_1 (timeout after 2 attempts)"
    )
    assert raised.value.translation_placeholders == {
        "action": "valve.open_valve",
        "entities": "valve.field_1 (timeout after 2 attempts)",
    }
    assert len(farm.records) == 2


async def test_send_command_to_an_unavailable_device_raises_after_its_retries(
    hass: HomeAssistant, farm: Farm, hub: MockConfigEntry, freezer: FrozenDateTimeFactory
) -> None:
    farm.entities["switch.pump_1"].set_available(False)

    with pytest.raises(HomeAssistantError) as raised:
        await send_command(
            hass, freezer, {"entity_id": "switch.pump_1", "action": "switch.turn_on"}
        )

    assert raised.value.translation_placeholders["entities"] == (
        "switch.pump_1 (unavailable after 4 attempts)"
    )


@pytest.mark.parametrize(
    ("data", "translation_key"),
    [
        ({"entity_id": "sensor.soil", "action": "switch.turn_on"}, "entity_not_tracked"),
        ({"entity_id": "switch.pump_1", "action": "light.turn_on"}, "entity_not_tracked"),
        ({"entity_id": "cover.vent", "action": "cover.stop_cover"}, "action_not_verifiable"),
        ({"entity_id": "switch.pump_1", "action": "switch.calibrate"}, "action_not_verifiable"),
    ],
)
async def test_send_command_refuses_what_it_cannot_verify(
    hass: HomeAssistant,
    farm: Farm,
    hub: MockConfigEntry,
    data: dict[str, Any],
    translation_key: str,
) -> None:
    with pytest.raises(ServiceValidationError) as raised:
        await hass.services.async_call(
            DOMAIN, "send_command", data, blocking=True, return_response=True
        )

    assert raised.value.translation_key == translation_key
    assert farm.records == []


async def test_actions_need_a_loaded_hub(hass: HomeAssistant, hub: MockConfigEntry) -> None:
    assert await hass.config_entries.async_unload(hub.entry_id)

    with pytest.raises(ServiceValidationError) as raised:
        await hass.services.async_call(DOMAIN, "reset_statistics", blocking=True)

    assert raised.value.translation_key == "hub_not_loaded"


@pytest.mark.parametrize(
    "layout",
    [{"Main line": [(Platform.VALVE, "main_valve", "Main valve")]}],
    ids=["motor_valve"],
)
async def test_send_command_toggle_is_resolved_once_and_a_retry_never_stops_the_valve(
    hass: HomeAssistant, farm: Farm, hub: MockConfigEntry, freezer: FrozenDateTimeFactory
) -> None:
    # The valve shows `opening` at once and is open 3.5 s later: after the 2 s timeout.
    farm.default = Behaviour(delay=lambda rng: 3.5)

    response = await send_command(
        hass,
        freezer,
        {"entity_id": "valve.main_valve", "action": "valve.toggle", "timeout": 2, "retries": 2},
    )

    assert [record.action for record in farm.records] == ["open_valve", "open_valve"]
    assert hass.states.get("valve.main_valve").state == "open"
    assert response["entities"]["valve.main_valve"]["outcome"] == "success"
    assert response["entities"]["valve.main_valve"]["attempts"] == 2
    await advance(hass, freezer, 5.0)  # the second command's motion ends too


@pytest.mark.parametrize(
    "layout",
    [{"Main line": [(Platform.VALVE, "main_valve", "Main valve")]}],
    ids=["motor_valve"],
)
async def test_send_command_refuses_to_toggle_a_valve_on_its_way(
    hass: HomeAssistant, farm: Farm, hub: MockConfigEntry, freezer: FrozenDateTimeFactory
) -> None:
    farm.default = Behaviour(delay=lambda rng: 10.0)
    await call(hass, "valve.open_valve", entity_id="valve.main_valve")
    assert hass.states.get("valve.main_valve").state == "opening"

    with pytest.raises(ServiceValidationError) as raised:
        await hass.services.async_call(
            DOMAIN,
            "send_command",
            {"entity_id": "valve.main_valve", "action": "valve.toggle"},
            blocking=True,
        )

    assert raised.value.translation_key == "toggle_without_opposite"
    assert raised.value.translation_placeholders == {
        "entity_id": "valve.main_valve",
        "state": "opening",
    }
    assert [record.action for record in farm.records] == ["open_valve"]
    await advance(hass, freezer, 10.0)


async def test_send_command_toggle_of_two_pumps_sends_each_its_explicit_action(
    hass: HomeAssistant, farm: Farm, hub: MockConfigEntry, freezer: FrozenDateTimeFactory
) -> None:
    farm.entities["switch.pump_2"].switch_by_hand(on=True)
    farm.behaviour["switch.pump_1"] = Behaviour(drop_first=1)

    response = await send_command(
        hass, freezer, {"entity_id": ["switch.pump_1", "switch.pump_2"], "action": "switch.toggle"}
    )

    assert [(r.entity_id, r.action) for r in farm.records] == [
        ("switch.pump_1", "turn_on"),
        ("switch.pump_2", "turn_off"),
        ("switch.pump_1", "turn_on"),  # the retry repeats the action, it does not toggle back
    ]
    assert {e: r["outcome"] for e, r in response["entities"].items()} == {
        "switch.pump_1": "success",
        "switch.pump_2": "success",
    }


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"area_id": "barn"}, "area_id"),
        ({"device_id": "pump_house"}, "device_id"),
        ({"label_id": "irrigation"}, "label_id"),
        ({"floor_id": "ground"}, "floor_id"),
        ({"entity_id": "switch.pump_2"}, "entity_id"),
        ({"target": {"area_id": "barn"}}, "target"),
    ],
)
async def test_send_command_refuses_targets_in_data_and_calls_nothing(
    hass: HomeAssistant,
    farm: Farm,
    hub: MockConfigEntry,
    data: dict[str, Any],
    key: str,
) -> None:
    barn = ar.async_get(hass).async_create("Barn")
    pump_house = dr.async_get(hass).async_get_device(identifiers={(SIM_DOMAIN, "Pump house")})
    assert pump_house is not None
    dr.async_get(hass).async_update_device(pump_house.id, area_id=barn.id)
    data = {k: barn.id if v == "barn" else v for k, v in data.items()}

    with pytest.raises(vol.Invalid) as raised:
        await hass.services.async_call(
            DOMAIN,
            "send_command",
            {"entity_id": "switch.pump_1", "action": "switch.turn_on", "data": data},
            blocking=True,
            return_response=True,
        )

    assert f"'{key}' is not allowed in data" in str(raised.value)
    assert farm.records == []
    assert hass.states.get("switch.pump_2").state == "off"


async def test_send_command_while_an_earlier_command_is_on_its_way_waits_for_what_follows(
    hass: HomeAssistant, farm: Farm, hub: MockConfigEntry, freezer: FrozenDateTimeFactory
) -> None:
    farm.default = Behaviour(delay=lambda rng: 2.0)
    await call(hass, "switch.turn_on", entity_id="switch.pump_1")
    await advance(hass, freezer, 0.5)

    # The pump still shows off, but the turn_on is about to land: that is no noop.
    response = await send_command(
        hass, freezer, {"entity_id": "switch.pump_1", "action": "switch.turn_off"}
    )

    assert response == {
        "entities": {"switch.pump_1": {"outcome": "success", "attempts": 1, "latency_s": 2.0}}
    }
    assert hass.states.get("switch.pump_1").state == "off"
