"""A wall clock that steps (NTP on a Raspberry Pi without a real-time clock) changes no figure.

`freezer` moves the wall clock and the monotonic clock together; a step of the
wall clock alone is made by shifting `time.time()` wherever Home Assistant
stamps events and states and wherever the integration reads the time.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from freezegun.api import FrozenDateTimeFactory
from homeassistant import core
from homeassistant.core import Event, HomeAssistant
from homeassistant.helpers import entity
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.farm_resilience import timing, tracker

from .sim import Behaviour, Farm
from .support import advance, call


class SteppedWallClock:
    """The `time` module with the wall clock moved by `offset` seconds; monotonic untouched."""

    def __init__(self) -> None:
        """Start in step with the real (frozen) clock."""
        self.offset = 0.0

    def time(self) -> float:
        """Return the stepped wall clock."""
        return time.time() + self.offset

    def __getattr__(self, name: str) -> Any:
        """Everything else is the real module's."""
        return getattr(time, name)


@pytest.fixture
def wall_clock(monkeypatch: pytest.MonkeyPatch) -> SteppedWallClock:
    """A wall clock the test can step, as Home Assistant and the integration see it."""
    clock = SteppedWallClock()
    monkeypatch.setattr(core, "time", clock)
    monkeypatch.setattr(entity, "timer", clock.time)  # states' timestamps
    for module in (tracker, timing):
        monkeypatch.setattr(module, "time", clock, raising=False)
    return clock


@pytest.mark.parametrize("step_s", [-3600.0, 3600.0], ids=["back_1_h", "forward_1_h"])
async def test_wall_clock_step_while_pending_leaves_the_latency_true(
    hass: HomeAssistant,
    command_events: list[Event[Any]],
    farm: Farm,
    hub: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
    wall_clock: SteppedWallClock,
    step_s: float,
) -> None:
    farm.default = Behaviour(delay=lambda rng: 1.0)

    await call(hass, "switch.turn_on", entity_id="switch.pump_1")
    await advance(hass, freezer, 0.5)
    wall_clock.offset = step_s
    await advance(hass, freezer, 0.5)

    assert [(e.data["outcome"], e.data["latency_s"]) for e in command_events] == [("success", 1.0)]


async def test_wall_clock_stepped_back_still_times_out_a_dropped_command_on_time(
    hass: HomeAssistant,
    command_events: list[Event[Any]],
    farm: Farm,
    hub: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
    wall_clock: SteppedWallClock,
) -> None:
    farm.default = Behaviour(drop_probability=1.0)

    await call(hass, "switch.turn_on", entity_id="switch.pump_1")
    await advance(hass, freezer, 1.0)
    wall_clock.offset = -600.0
    await advance(hass, freezer, 3.9)
    assert command_events == []
    await advance(hass, freezer, 0.1)

    assert [e.data["outcome"] for e in command_events] == ["timeout"]
