"""Actions: send_command verifies, retries with backoff and reports; reset_statistics."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import pytest
from freezegun.api import FrozenDateTimeFactory
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.farm_resilience.const import DOMAIN

from .conftest import advance
from .sim import Behaviour, Farm

RATE = "sensor.farm_resilience_command_success_rate"


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
