"""Command outcomes: success, timeout, unavailable, superseded, noop; toggle, cover, light."""

from __future__ import annotations

from typing import Any

import pytest
from freezegun.api import FrozenDateTimeFactory
from homeassistant.core import Event, HomeAssistant
from pytest_homeassistant_custom_component.common import MockConfigEntry

from .sim import Behaviour, Farm
from .support import advance, call, fixed_delay


async def test_command_reaching_expected_state_counts_as_success_with_latency(
    hass: HomeAssistant,
    command_events: list[Event[Any]],
    farm: Farm,
    hub: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
) -> None:
    farm.default = fixed_delay(1.5)

    await call(hass, "switch.turn_on", entity_id="switch.pump_1")
    await advance(hass, freezer, 1.0)
    assert command_events == []
    await advance(hass, freezer, 0.5)

    assert len(command_events) == 1
    data = command_events[0].data
    assert data["entity_id"] == "switch.pump_1"
    assert data["domain"] == "switch"
    assert data["service"] == "turn_on"
    assert data["outcome"] == "success"
    assert data["latency_s"] == pytest.approx(1.5)
    assert data["context_id"] == command_events[0].context.id
    assert hass.states.get("sensor.farm_resilience_command_success_rate").state == "100.0"
    assert float(hass.states.get("sensor.farm_resilience_command_latency_p50").state) == (
        pytest.approx(1.5, rel=0.05)
    )


async def test_command_without_effect_times_out_at_command_timeout(
    hass: HomeAssistant,
    command_events: list[Event[Any]],
    farm: Farm,
    hub: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
) -> None:
    farm.default = Behaviour(drop_probability=1.0)

    await call(hass, "switch.turn_on", entity_id="switch.pump_1")
    await advance(hass, freezer, 4.9)
    assert command_events == []
    await advance(hass, freezer, 0.1)

    assert [(e.data["outcome"], e.data["latency_s"]) for e in command_events] == [("timeout", None)]
    assert hass.states.get("sensor.farm_resilience_command_success_rate").state == "0.0"
    assert hass.states.get("sensor.farm_resilience_commands_failed").state == "1"


async def test_result_arriving_after_the_timeout_is_still_a_timeout(
    hass: HomeAssistant,
    command_events: list[Event[Any]],
    farm: Farm,
    hub: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
) -> None:
    farm.default = fixed_delay(6.0)

    await call(hass, "switch.turn_on", entity_id="switch.pump_1")
    await advance(hass, freezer, 7.0)

    assert hass.states.get("switch.pump_1").state == "on"
    assert [e.data["outcome"] for e in command_events] == ["timeout"]


async def test_entity_going_unavailable_while_pending_counts_as_unavailable(
    hass: HomeAssistant,
    command_events: list[Event[Any]],
    farm: Farm,
    hub: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
) -> None:
    farm.default = fixed_delay(3.0)

    await call(hass, "switch.turn_on", entity_id="switch.pump_1")
    await advance(hass, freezer, 1.0)
    farm.entities["switch.pump_1"].set_available(False)
    await hass.async_block_till_done()

    assert [e.data["outcome"] for e in command_events] == ["unavailable"]
    assert hass.states.get("sensor.farm_resilience_commands_failed").attributes["unavailable"] == 1
    await advance(hass, freezer, 2.0)  # the device's late answer changes nothing
    assert len(command_events) == 1


async def test_command_to_an_unavailable_entity_counts_as_unavailable(
    hass: HomeAssistant, command_events: list[Event[Any]], farm: Farm, hub: MockConfigEntry
) -> None:
    farm.entities["switch.pump_1"].set_available(False)

    await call(hass, "switch.turn_on", entity_id="switch.pump_1")
    await hass.async_block_till_done()

    assert [e.data["outcome"] for e in command_events] == ["unavailable"]


async def test_newer_command_supersedes_pending_one_and_is_not_counted(
    hass: HomeAssistant,
    command_events: list[Event[Any]],
    farm: Farm,
    hub: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
) -> None:
    farm.default = fixed_delay(2.0)

    await call(hass, "valve.open_valve", entity_id="valve.field_1")
    await advance(hass, freezer, 1.0)
    await call(hass, "valve.open_valve", entity_id="valve.field_1")
    await advance(hass, freezer, 1.0)
    await advance(hass, freezer, 1.0)

    assert [(e.data["outcome"], e.data["latency_s"]) for e in command_events] == [
        ("superseded", None),
        ("success", 1.0),
    ]
    assert (
        hass.states.get("sensor.farm_resilience_command_success_rate").attributes["commands"] == 1
    )


async def test_command_already_in_expected_state_is_noop_and_not_counted(
    hass: HomeAssistant, command_events: list[Event[Any]], farm: Farm, hub: MockConfigEntry
) -> None:

    await call(hass, "switch.turn_off", entity_id="switch.pump_1")
    await hass.async_block_till_done()

    assert [e.data["outcome"] for e in command_events] == ["noop"]
    assert hass.states.get("sensor.farm_resilience_command_success_rate").state == "unknown"


async def test_toggle_expects_the_opposite_of_the_state_at_call_time(
    hass: HomeAssistant,
    command_events: list[Event[Any]],
    farm: Farm,
    hub: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
) -> None:
    farm.default = fixed_delay(1.0)

    await call(hass, "switch.toggle", entity_id="switch.pump_1")
    await advance(hass, freezer, 1.0)
    assert hass.states.get("switch.pump_1").state == "on"
    await call(hass, "switch.toggle", entity_id="switch.pump_1")
    await advance(hass, freezer, 1.0)

    assert hass.states.get("switch.pump_1").state == "off"
    assert [e.data["outcome"] for e in command_events] == ["success", "success"]


async def test_cover_passing_through_opening_is_not_a_failure(
    hass: HomeAssistant,
    command_events: list[Event[Any]],
    farm: Farm,
    hub: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
) -> None:
    farm.default = fixed_delay(4.0)

    await call(hass, "cover.open_cover", entity_id="cover.vent")
    await advance(hass, freezer, 2.0)
    assert hass.states.get("cover.vent").state == "opening"
    assert command_events == []
    await advance(hass, freezer, 2.0)

    assert hass.states.get("cover.vent").state == "open"
    assert [(e.data["outcome"], e.data["latency_s"]) for e in command_events] == [("success", 4.0)]


async def test_cover_position_is_decided_by_current_position(
    hass: HomeAssistant,
    command_events: list[Event[Any]],
    farm: Farm,
    hub: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
) -> None:
    farm.default = fixed_delay(1.0)

    await call(hass, "cover.set_cover_position", entity_id="cover.vent", position=40)
    await advance(hass, freezer, 1.0)

    assert hass.states.get("cover.vent").attributes["current_position"] == 40
    assert [e.data["outcome"] for e in command_events] == ["success"]


async def test_stopping_a_moving_cover_supersedes_its_command_without_a_failure(
    hass: HomeAssistant,
    command_events: list[Event[Any]],
    farm: Farm,
    hub: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
) -> None:
    farm.default = Behaviour(drop_probability=1.0)

    await call(hass, "cover.open_cover", entity_id="cover.vent")
    await call(hass, "cover.stop_cover", entity_id="cover.vent")
    await advance(hass, freezer, 10.0)

    assert [e.data["outcome"] for e in command_events] == ["superseded"]


@pytest.mark.parametrize(
    "case",
    [
        ({"brightness_pct": 50}, None, "success"),
        ({"brightness": 200}, None, "success"),
        ({"brightness": 200}, 198, "success"),
        ({"brightness_pct": 50}, 90, "timeout"),
        ({"brightness": 200}, 100, "timeout"),
    ],
    ids=["pct", "brightness", "within-tolerance", "pct-off-target", "off-target"],
)
async def test_light_brightness_is_verified_within_tolerance(
    hass: HomeAssistant,
    command_events: list[Event[Any]],
    farm: Farm,
    hub: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
    case: tuple[dict[str, int], int | None, str],
) -> None:
    data, clamp, outcome = case
    farm.default = Behaviour(delay=lambda rng: 0.5, clamp_brightness=clamp)

    await call(hass, "light.turn_on", entity_id="light.grow_light", **data)
    await advance(hass, freezer, 0.5)
    await advance(hass, freezer, 5.0)

    assert hass.states.get("light.grow_light").state == "on"
    assert [e.data["outcome"] for e in command_events] == [outcome]


async def test_command_replacing_one_on_its_way_is_judged_by_the_state_that_follows(
    hass: HomeAssistant,
    command_events: list[Event[Any]],
    farm: Farm,
    hub: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
) -> None:
    farm.default = fixed_delay(2.0)

    await call(hass, "switch.turn_on", entity_id="switch.pump_1")
    await advance(hass, freezer, 0.5)
    await call(hass, "switch.turn_off", entity_id="switch.pump_1")  # the pump is still off
    await advance(hass, freezer, 1.5)
    assert hass.states.get("switch.pump_1").state == "on"  # the first command lands
    await advance(hass, freezer, 0.5)

    assert hass.states.get("switch.pump_1").state == "off"
    assert [
        (e.data["service"], e.data["outcome"], e.data["latency_s"]) for e in command_events
    ] == [
        ("turn_on", "superseded", None),
        ("turn_off", "success", 2.0),
    ]
    assert hass.states.get("sensor.farm_resilience_command_success_rate").state == "100.0"


async def test_on_then_off_a_moment_apart_counts_the_off_that_was_carried_out(
    hass: HomeAssistant,
    command_events: list[Event[Any]],
    farm: Farm,
    hub: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
) -> None:
    farm.default = fixed_delay(2.0)

    await call(hass, "switch.turn_on", entity_id="switch.pump_1")
    await advance(hass, freezer, 0.1)
    await call(hass, "switch.turn_off", entity_id="switch.pump_1")
    await advance(hass, freezer, 1.9)
    await advance(hass, freezer, 0.1)

    assert [e.data["outcome"] for e in command_events] == ["superseded", "success"]
    assert (
        hass.states.get("sensor.farm_resilience_command_success_rate").attributes["commands"] == 1
    )


async def test_command_replacing_one_the_device_dropped_is_a_noop_when_nothing_follows(
    hass: HomeAssistant,
    command_events: list[Event[Any]],
    farm: Farm,
    hub: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
) -> None:
    farm.default = Behaviour(drop_first=1)  # the turn_on is lost, the turn_off arrives

    await call(hass, "switch.turn_on", entity_id="switch.pump_1")
    await advance(hass, freezer, 0.5)
    await call(hass, "switch.turn_off", entity_id="switch.pump_1")
    await advance(hass, freezer, 5.0)

    assert [e.data["outcome"] for e in command_events] == ["superseded", "noop"]
    assert hass.states.get("sensor.farm_resilience_command_success_rate").state == "unknown"


async def test_relay_falling_back_right_after_switching_is_reported_as_bounced(
    hass: HomeAssistant,
    command_events: list[Event[Any]],
    farm: Farm,
    hub: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
) -> None:
    farm.default = fixed_delay(0.5)

    await call(hass, "switch.turn_on", entity_id="switch.pump_1")
    await advance(hass, freezer, 0.5)
    await advance(hass, freezer, 0.5)
    farm.entities["switch.pump_1"].switch_by_hand(on=False)  # the relay drops out by itself
    await hass.async_block_till_done()

    assert [(e.data["outcome"], e.data["latency_s"]) for e in command_events] == [
        ("success", 0.5),
        ("bounced", None),
    ]
    assert command_events[1].context.id == command_events[0].context.id
    # Counted apart: the success stands in the rate (docs, "How a command is judged").
    assert hass.states.get("sensor.farm_resilience_command_success_rate").state == "100.0"


async def test_switching_back_after_the_bounce_window_or_by_command_is_no_bounce(
    hass: HomeAssistant,
    command_events: list[Event[Any]],
    farm: Farm,
    hub: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
) -> None:

    await call(hass, "switch.turn_on", entity_id="switch.pump_1")
    await hass.async_block_till_done()
    await call(hass, "switch.turn_off", entity_id="switch.pump_1")  # a command, not a bounce
    await call(hass, "switch.turn_on", entity_id="switch.pump_2")
    await advance(hass, freezer, 3.5)
    farm.entities["switch.pump_2"].switch_by_hand(on=False)
    await hass.async_block_till_done()

    assert [e.data["outcome"] for e in command_events] == ["success", "success", "success"]


async def test_light_transition_longer_than_the_timeout_is_allowed(
    hass: HomeAssistant,
    command_events: list[Event[Any]],
    farm: Farm,
    hub: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
) -> None:

    await call(hass, "light.turn_on", entity_id="light.grow_light", brightness=200, transition=8)
    await advance(hass, freezer, 7.9)
    assert command_events == []
    await advance(hass, freezer, 0.1)

    assert [(e.data["outcome"], e.data["latency_s"]) for e in command_events] == [("success", 8.0)]
