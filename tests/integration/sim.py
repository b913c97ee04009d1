"""A simulated farm for the tests: devices that drop or delay commands, with ground truth.

The devices are a test-only integration `farm_sim` (switches, valves, covers,
lights). Every command is recorded with the time it was received and the time
the device applied it (None when dropped), so tests can compare what Farm
Resilience reports with what really happened.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from fractions import Fraction
from typing import Any, ClassVar

from homeassistant.components.climate import ClimateEntity, ClimateEntityFeature, HVACMode
from homeassistant.components.cover import CoverEntity, CoverEntityFeature
from homeassistant.components.light import (
    ATTR_BRIGHTNESS,
    ATTR_TRANSITION,
    ColorMode,
    LightEntity,
    LightEntityFeature,
)
from homeassistant.components.switch import SwitchEntity
from homeassistant.components.valve import ValveEntity, ValveEntityFeature
from homeassistant.config_entries import ConfigEntry, ConfigFlow
from homeassistant.const import ATTR_TEMPERATURE, Platform, UnitOfTemperature
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.device_registry import DeviceInfo
from homeassistant.helpers.entity import Entity
from homeassistant.helpers.entity_platform import AddEntitiesCallback, async_get_platforms
from homeassistant.helpers.event import async_call_later
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    MockModule,
    MockPlatform,
    mock_integration,
    mock_platform,
)

from custom_components.farm_resilience.statistics import HISTOGRAM_MIN_S, HISTOGRAM_RATIO

SIM_DOMAIN = "farm_sim"
PLATFORMS = [Platform.CLIMATE, Platform.COVER, Platform.LIGHT, Platform.SWITCH, Platform.VALVE]


@dataclass(slots=True)
class Behaviour:
    """How a device answers commands: share dropped, and the delay before it applies one."""

    drop_probability: float = 0.0
    delay: Callable[[random.Random], float] = lambda rng: 0.0
    # The first commands the device ignores: a flaky radio link that recovers.
    drop_first: int = 0
    # Brightness a light really takes, for lights that cannot do what they are told.
    clamp_brightness: int | None = None


@dataclass(slots=True)
class Record:
    """Ground truth of one command."""

    entity_id: str
    action: str
    received_at: float
    applied_at: float | None = None
    noop: bool = False


@dataclass(slots=True)
class Farm:
    """The simulated farm's devices, their behaviour and the ground truth."""

    hass: HomeAssistant
    rng: random.Random = field(default_factory=lambda: random.Random(20251126))
    default: Behaviour = field(default_factory=Behaviour)
    behaviour: dict[str, Behaviour] = field(default_factory=dict)
    records: list[Record] = field(default_factory=list)
    received: dict[str, int] = field(default_factory=dict)
    entities: dict[str, SimEntity] = field(default_factory=dict)
    due: list[float] = field(default_factory=list)

    def behaviour_of(self, entity_id: str) -> Behaviour:
        """Return how an entity behaves."""
        return self.behaviour.get(entity_id, self.default)

    @callback
    def command(
        self,
        entity: SimEntity,
        action: str,
        apply: Callable[[], None],
        *,
        noop: bool = False,
        takes: float = 0.0,
    ) -> None:
        """Receive a command: drop it, apply it now, or apply it after a delay.

        `noop`: the device already shows the result (ground truth: not a command to
        count); `takes`: time the command itself asks for (a light's transition).
        """
        behaviour = self.behaviour_of(entity.entity_id)
        record = Record(entity.entity_id, action, time.time(), noop=noop)
        self.records.append(record)
        received = self.received[entity.entity_id] = self.received.get(entity.entity_id, 0) + 1
        if received <= behaviour.drop_first or self.rng.random() < behaviour.drop_probability:
            return
        delay = behaviour.delay(self.rng) + takes

        @callback
        def _apply(_now: datetime | None = None) -> None:
            record.applied_at = time.time()
            apply()
            entity.async_write_ha_state()

        if delay <= 0:
            _apply()
            return
        self.due.append(record.received_at + delay)
        async_call_later(self.hass, delay, _apply)

    def next_due(self, after: float) -> float | None:
        """Return the next time a device will apply a command, after `after`."""
        later = [due for due in self.due if due > after]
        return min(later) if later else None


class SimConfigFlow(ConfigFlow, domain=SIM_DOMAIN):
    """Config entries need a flow handler; the farm is set up directly."""

    VERSION = 1


class SimEntity(Entity):
    """A simulated device entity."""

    _attr_should_poll = False

    def __init__(self, farm: Farm, object_id: str, name: str, device: str) -> None:
        """Name the entity and put it on its device."""
        self.farm = farm
        self._attr_name = name
        self._attr_unique_id = object_id
        self._attr_device_info = DeviceInfo(identifiers={(SIM_DOMAIN, device)}, name=device)

    async def async_added_to_hass(self) -> None:
        """Let the farm reach the entity by entity id."""
        self.farm.entities[self.entity_id] = self

    async def async_will_remove_from_hass(self) -> None:
        """Forget the entity: a removed entity is no device of the farm any more."""
        if self.farm.entities.get(self.entity_id) is self:
            del self.farm.entities[self.entity_id]

    def set_available(self, available: bool) -> None:
        """Simulate the device dropping off the network or coming back."""
        self._attr_available = available
        self.async_write_ha_state()


class SimSwitch(SimEntity, SwitchEntity):
    """A pump or a fence relay."""

    _attr_is_on = False

    async def async_turn_on(self, **kwargs: Any) -> None:
        """Switch on, maybe."""
        self.farm.command(
            self, "turn_on", lambda: setattr(self, "_attr_is_on", True), noop=bool(self.is_on)
        )

    async def async_turn_off(self, **kwargs: Any) -> None:
        """Switch off, maybe."""
        self.farm.command(
            self, "turn_off", lambda: setattr(self, "_attr_is_on", False), noop=not self.is_on
        )

    def switch_by_hand(self, *, on: bool) -> None:
        """Someone flips the relay at the device: a state change no command asked for."""
        self._attr_is_on = on
        self.async_write_ha_state()


class SimValve(SimEntity, ValveEntity):
    """An irrigation valve that reports open or closed, no position."""

    _attr_reports_position = False
    _attr_supported_features = ValveEntityFeature.OPEN | ValveEntityFeature.CLOSE
    _attr_is_closed = True

    async def async_open_valve(self) -> None:
        """Open, maybe."""
        self.farm.command(self, "open_valve", lambda: setattr(self, "_attr_is_closed", False))

    async def async_close_valve(self) -> None:
        """Close, maybe."""
        self.farm.command(self, "close_valve", lambda: setattr(self, "_attr_is_closed", True))


class SimMotorValve(SimEntity, ValveEntity):
    """A motorised main valve: shows `opening` / `closing` at once, reaches the end later."""

    _attr_reports_position = False
    _attr_supported_features = (
        ValveEntityFeature.OPEN | ValveEntityFeature.CLOSE | ValveEntityFeature.STOP
    )
    _attr_is_closed = True
    _attr_is_opening = False
    _attr_is_closing = False

    def _move(self, action: str, *, closed: bool) -> None:
        """Show the movement now, arrive later (or never, when the command is dropped)."""
        self._attr_is_opening = not closed
        self._attr_is_closing = closed
        self.async_write_ha_state()

        def arrive() -> None:
            self._attr_is_closed = closed
            self._attr_is_opening = self._attr_is_closing = False

        self.farm.command(self, action, arrive)

    async def async_open_valve(self) -> None:
        """Start opening."""
        self._move("open_valve", closed=False)

    async def async_close_valve(self) -> None:
        """Start closing."""
        self._move("close_valve", closed=True)

    async def async_stop_valve(self) -> None:
        """Stop where it is."""

        def stop() -> None:
            self._attr_is_opening = self._attr_is_closing = False

        self.farm.command(self, "stop_valve", stop)


class SimCover(SimEntity, CoverEntity):
    """A greenhouse vent: shows `opening` / `closing` at once, reaches the end later."""

    _attr_supported_features = (
        CoverEntityFeature.OPEN
        | CoverEntityFeature.CLOSE
        | CoverEntityFeature.SET_POSITION
        | CoverEntityFeature.STOP
    )
    _attr_current_cover_position = 0
    _attr_is_closed = True
    _attr_is_opening = False
    _attr_is_closing = False

    def _move(self, position: int) -> None:
        """Show the movement now, arrive later (or never, when the command is dropped)."""
        self._attr_is_opening = position > (self._attr_current_cover_position or 0)
        self._attr_is_closing = not self._attr_is_opening
        self.async_write_ha_state()

        def arrive() -> None:
            self._attr_current_cover_position = position
            self._attr_is_closed = position == 0
            self._attr_is_opening = self._attr_is_closing = False

        self.farm.command(self, f"move_to_{position}", arrive)

    async def async_open_cover(self, **kwargs: Any) -> None:
        """Open fully."""
        self._move(100)

    async def async_close_cover(self, **kwargs: Any) -> None:
        """Close fully."""
        self._move(0)

    async def async_set_cover_position(self, **kwargs: Any) -> None:
        """Move to a position."""
        self._move(kwargs["position"])

    async def async_stop_cover(self, **kwargs: Any) -> None:
        """Stop where it is."""
        self._attr_is_opening = self._attr_is_closing = False
        self.async_write_ha_state()


class SimLight(SimEntity, LightEntity):
    """A grow light with brightness; a transition makes it take that much longer."""

    _attr_color_mode = ColorMode.BRIGHTNESS
    _attr_supported_color_modes: ClassVar[set[ColorMode]] = {ColorMode.BRIGHTNESS}
    _attr_supported_features = LightEntityFeature.TRANSITION
    _attr_is_on = False
    _attr_brightness = 0

    async def async_turn_on(self, **kwargs: Any) -> None:
        """Switch on, at a brightness when one is given."""
        clamp = self.farm.behaviour_of(self.entity_id).clamp_brightness
        brightness = kwargs.get(ATTR_BRIGHTNESS, self._attr_brightness or 255)

        def apply() -> None:
            self._attr_is_on = True
            self._attr_brightness = clamp if clamp is not None else brightness

        noop = bool(self.is_on) and brightness == self._attr_brightness
        takes = float(kwargs.get(ATTR_TRANSITION, 0.0))
        self.farm.command(self, "turn_on", apply, noop=noop, takes=takes)

    async def async_turn_off(self, **kwargs: Any) -> None:
        """Switch off."""
        self.farm.command(
            self, "turn_off", lambda: setattr(self, "_attr_is_on", False), noop=not self.is_on
        )


class SimOnOffLight(SimLight):
    """A barn light on a plain relay: on or off, no brightness."""

    _attr_color_mode = ColorMode.ONOFF
    _attr_supported_color_modes: ClassVar[set[ColorMode]] = {ColorMode.ONOFF}
    _attr_brightness = None


class SimThermostat(SimEntity, ClimateEntity):
    """A brooder heater that works in whole degrees Celsius, between 7 and 35 °C."""

    _attr_temperature_unit = UnitOfTemperature.CELSIUS
    _attr_target_temperature_step = 1.0
    _attr_min_temp = 7.0
    _attr_max_temp = 35.0
    _attr_hvac_modes: ClassVar[list[HVACMode]] = [HVACMode.OFF, HVACMode.HEAT]
    _attr_hvac_mode = HVACMode.HEAT
    _attr_supported_features = (
        ClimateEntityFeature.TARGET_TEMPERATURE
        | ClimateEntityFeature.TURN_ON
        | ClimateEntityFeature.TURN_OFF
    )
    _attr_target_temperature = 20.0
    _attr_current_temperature = 18.0

    async def async_set_temperature(self, **kwargs: Any) -> None:
        """Set the target, rounded to the device's whole degrees."""
        target = float(round(kwargs[ATTR_TEMPERATURE]))
        self.farm.command(
            self,
            f"set_temperature_{target:g}",
            lambda: setattr(self, "_attr_target_temperature", target),
            noop=target == self._attr_target_temperature,
        )


# Device name -> entities on it: (platform, object id, name).
Layout = dict[str, list[tuple[Platform, str, str]]]
LAYOUT: Layout = {
    "Pump house": [
        (Platform.SWITCH, "pump_1", "Pump 1"),
        (Platform.SWITCH, "pump_2", "Pump 2"),
    ],
    "Field valves": [(Platform.VALVE, "field_1", "Field 1")],
    "Greenhouse": [
        (Platform.COVER, "vent", "Vent"),
        (Platform.LIGHT, "grow_light", "Grow light"),
    ],
}


def relay_boards(count: int, start: int = 0) -> Layout:
    """Return a layout of relay boards `start`..`count - 1` with one switch each."""
    return {
        f"Relay {index}": [(Platform.SWITCH, f"relay_{index}", f"Relay {index}")]
        for index in range(start, count)
    }


_CLASSES: dict[Platform, type[SimEntity]] = {
    Platform.SWITCH: SimSwitch,
    Platform.VALVE: SimValve,
    Platform.COVER: SimCover,
    Platform.LIGHT: SimLight,
    Platform.CLIMATE: SimThermostat,
}
# Object ids that get a class of their own within their platform.
SPECIAL_CLASSES: dict[str, type[SimEntity]] = {
    "barn_light": SimOnOffLight,
    "main_valve": SimMotorValve,
}


def _entities_of(farm: Farm, layout: Layout, platform: Platform) -> list[SimEntity]:
    """Return new entities of the layout for one platform."""
    return [
        SPECIAL_CLASSES.get(object_id, _CLASSES[kind])(farm, object_id, name, device)
        for device, entities in layout.items()
        for kind, object_id, name in entities
        if kind is platform
    ]


async def async_add_to_farm(hass: HomeAssistant, farm: Farm, layout: Layout) -> None:
    """Add devices to the running farm, as an integration does when it finds new ones."""
    for platform in async_get_platforms(hass, SIM_DOMAIN):
        if entities := _entities_of(farm, layout, Platform(platform.domain)):
            await platform.async_add_entities(entities)
    await hass.async_block_till_done()


async def async_setup_farm(hass: HomeAssistant, farm: Farm, layout: Layout) -> ConfigEntry:
    """Register the farm_sim integration and set up the layout's devices."""

    async def setup_entry(hass: HomeAssistant, entry: ConfigEntry) -> bool:
        await hass.config_entries.async_forward_entry_setups(entry, PLATFORMS)
        return True

    def platform_setup(platform: Platform) -> Any:
        async def setup(
            hass: HomeAssistant, entry: ConfigEntry, add_entities: AddEntitiesCallback
        ) -> None:
            add_entities(_entities_of(farm, layout, platform))

        return setup

    mock_integration(hass, MockModule(SIM_DOMAIN, async_setup_entry=setup_entry))
    mock_platform(hass, f"{SIM_DOMAIN}.config_flow")
    for platform in PLATFORMS:
        mock_platform(
            hass,
            f"{SIM_DOMAIN}.{platform}",
            MockPlatform(async_setup_entry=platform_setup(platform)),
        )
    entry = MockConfigEntry(domain=SIM_DOMAIN)
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    return entry


def unreliable_delay(rng: random.Random) -> float:
    """Mostly sub-second answers with a long tail; 4 % answer after the timeout."""
    if rng.random() < 0.04:
        return rng.uniform(6.0, 7.0)
    return min(max(rng.lognormvariate(math.log(0.8), 0.7), 0.002), 4.8)


def nearest_rank(values: list[float], q: float) -> float:
    """Return the ceil(q * n)-th smallest value: the quantile the histogram bound refers to."""
    return sorted(values)[math.ceil(q * len(values)) - 1]


def within_histogram_bound(reported: float, truth: float) -> bool:
    """The statistics module's stated bound: 5 % of the true value, or 10 ms below 10 ms."""
    return abs(reported - truth) <= max((HISTOGRAM_RATIO - 1) * truth, HISTOGRAM_MIN_S)


def shown_below_target(commands: int, failed: int, target_pct: float, confidence: float) -> bool:
    """Return whether the failures show a rate below target: an exact binomial tail, in integers.

    The ground truth for the hub's evidence rule, computed independently of it: the
    chance of `failed` or more failures at a failure rate of exactly 1 - target is
    below 1 - confidence. With p = a / d, the tail times d^n is a sum of integers.
    """
    if failed == 0:
        return False
    budget = 1 - Fraction(str(target_pct)) / 100
    alpha = 1 - Fraction(str(confidence))
    a, d = budget.numerator, budget.denominator
    tail = sum(
        math.comb(commands, i) * a**i * (d - a) ** (commands - i)
        for i in range(failed, commands + 1)
    )
    return tail * alpha.denominator < alpha.numerator * d**commands
