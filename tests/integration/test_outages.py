"""Device outages: repair issue and degraded past outage_alert, nothing during start-up."""

from __future__ import annotations

import math
import time

import pytest
from freezegun.api import FrozenDateTimeFactory
from homeassistant.config_entries import ConfigEntryDisabler
from homeassistant.const import EVENT_HOMEASSISTANT_STARTED
from homeassistant.core import CoreState, HomeAssistant
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_capture_events

from custom_components.farm_resilience.const import EVENT_DEGRADED, EVENT_RECOVERED

from .sim import Farm
from .support import (
    DEGRADED,
    UNAVAILABLE_DEVICES,
    advance,
    pump_house_issue,
    save_options,
    take_down_pump_house,
)


async def test_device_down_past_outage_alert_raises_repair_issue_and_degraded(
    hass: HomeAssistant, farm: Farm, hub: MockConfigEntry, freezer: FrozenDateTimeFactory
) -> None:
    events = async_capture_events(hass, EVENT_DEGRADED)
    take_down_pump_house(farm)
    await advance(hass, freezer, 59.0)
    assert pump_house_issue(hass) is None
    assert hass.states.get(DEGRADED).state == "off"

    await advance(hass, freezer, 1.0)

    issue = pump_house_issue(hass)
    assert issue is not None
    assert issue.translation_key == "device_down"
    assert issue.translation_placeholders == {"device": "Pump house", "seconds": "60"}
    reasons = ["Pump house: down for more than 60 s (all 2 tracked entities unavailable)"]
    assert hass.states.get(DEGRADED).state == "on"
    assert hass.states.get(DEGRADED).attributes["reasons"] == reasons
    assert hass.states.get(UNAVAILABLE_DEVICES).state == "1"
    assert hass.states.get(UNAVAILABLE_DEVICES).attributes["devices"] == ["Pump house"]
    assert [event.data["reasons"] for event in events] == [reasons]


async def test_recovery_clears_repair_issue_and_degraded(
    hass: HomeAssistant, farm: Farm, hub: MockConfigEntry, freezer: FrozenDateTimeFactory
) -> None:
    recovered = async_capture_events(hass, EVENT_RECOVERED)
    take_down_pump_house(farm)
    await advance(hass, freezer, 61.0)
    assert pump_house_issue(hass) is not None

    farm.entities["switch.pump_1"].set_available(True)
    await hass.async_block_till_done()

    assert pump_house_issue(hass) is None
    assert hass.states.get(DEGRADED).state == "off"
    assert hass.states.get(DEGRADED).attributes["reasons"] == []
    assert hass.states.get(UNAVAILABLE_DEVICES).state == "0"
    assert [event.data["reasons"] for event in recovered] == [[]]


async def test_device_with_one_entity_left_available_is_not_down(
    hass: HomeAssistant, farm: Farm, hub: MockConfigEntry, freezer: FrozenDateTimeFactory
) -> None:
    farm.entities["switch.pump_1"].set_available(False)
    await advance(hass, freezer, 600.0)

    assert pump_house_issue(hass) is None
    assert hass.states.get(DEGRADED).state == "off"


async def test_unavailable_during_start_up_raises_no_alarm(
    hass: HomeAssistant, farm: Farm, hub_entry: MockConfigEntry, freezer: FrozenDateTimeFactory
) -> None:
    hass.set_state(CoreState.starting)
    take_down_pump_house(farm)
    assert await hass.config_entries.async_setup(hub_entry.entry_id)
    await advance(hass, freezer, 600.0)  # a slow start-up: no alarm however long it takes
    assert pump_house_issue(hass) is None

    hass.set_state(CoreState.running)
    hass.bus.async_fire(EVENT_HOMEASSISTANT_STARTED)
    await advance(hass, freezer, 30.0)
    take_down_pump_house(farm, available=True)  # the integration came up after start
    await advance(hass, freezer, 600.0)

    assert pump_house_issue(hass) is None
    assert hass.states.get(DEGRADED).state == "off"


@pytest.mark.parametrize("options", [{"outage_alert": 120}])
async def test_device_down_since_start_up_alarms_outage_alert_after_start(
    hass: HomeAssistant, farm: Farm, hub_entry: MockConfigEntry, freezer: FrozenDateTimeFactory
) -> None:
    hass.set_state(CoreState.starting)
    take_down_pump_house(farm)
    assert await hass.config_entries.async_setup(hub_entry.entry_id)
    await advance(hass, freezer, 300.0)
    hass.set_state(CoreState.running)
    hass.bus.async_fire(EVENT_HOMEASSISTANT_STARTED)

    await advance(hass, freezer, 119.0)
    assert pump_house_issue(hass) is None
    await advance(hass, freezer, 1.0)
    assert pump_house_issue(hass) is not None


async def test_saving_the_options_keeps_an_outage_its_repair_issue_and_sends_no_second_degraded(
    hass: HomeAssistant, farm: Farm, hub: MockConfigEntry, freezer: FrozenDateTimeFactory
) -> None:
    degraded = async_capture_events(hass, EVENT_DEGRADED)
    recovered = async_capture_events(hass, EVENT_RECOVERED)
    take_down_pump_house(farm)
    await advance(hass, freezer, 3600.0)
    issue = pump_house_issue(hass)
    assert issue is not None
    reasons = hass.states.get(DEGRADED).attributes["reasons"]

    await save_options(hass, hub, latency_target=4.0)
    await advance(hass, freezer, 1.0)

    assert hub.runtime_data.options.latency_target == 4.0  # reloaded with the new options
    assert pump_house_issue(hass) == issue
    assert hass.states.get(UNAVAILABLE_DEVICES).attributes["devices"] == ["Pump house"]
    assert hass.states.get(DEGRADED).state == "on"
    assert hass.states.get(DEGRADED).attributes["reasons"] == reasons
    assert len(degraded) == 1
    assert recovered == []
    diagnostics_down = hub.runtime_data.outages.down_devices()
    assert time.monotonic() - diagnostics_down["Pump house"] >= 3600.0

    take_down_pump_house(farm, available=True)
    await hass.async_block_till_done()
    assert pump_house_issue(hass) is None
    assert len(recovered) == 1


async def test_a_device_back_while_the_hub_reloads_ends_its_outage(
    hass: HomeAssistant, farm: Farm, hub: MockConfigEntry, freezer: FrozenDateTimeFactory
) -> None:
    take_down_pump_house(farm)
    await advance(hass, freezer, 120.0)
    assert pump_house_issue(hass) is not None

    assert await hass.config_entries.async_unload(hub.entry_id)
    take_down_pump_house(farm, available=True)
    assert await hass.config_entries.async_setup(hub.entry_id)
    await hass.async_block_till_done()

    assert pump_house_issue(hass) is None
    assert hass.states.get(UNAVAILABLE_DEVICES).state == "0"
    assert hass.states.get(DEGRADED).state == "off"


async def test_removing_the_hub_removes_its_repair_issues(
    hass: HomeAssistant, farm: Farm, hub: MockConfigEntry, freezer: FrozenDateTimeFactory
) -> None:
    take_down_pump_house(farm)
    await advance(hass, freezer, 120.0)
    assert pump_house_issue(hass) is not None

    assert await hass.config_entries.async_remove(hub.entry_id)
    await hass.async_block_till_done()

    assert pump_house_issue(hass) is None


async def test_disabling_the_hub_removes_its_repair_issues(
    hass: HomeAssistant, farm: Farm, hub: MockConfigEntry, freezer: FrozenDateTimeFactory
) -> None:
    take_down_pump_house(farm)
    await advance(hass, freezer, 120.0)

    assert await hass.config_entries.async_set_disabled_by(hub.entry_id, ConfigEntryDisabler.USER)
    await hass.async_block_till_done()

    assert pump_house_issue(hass) is None


async def flap(
    hass: HomeAssistant, farm: Farm, freezer: FrozenDateTimeFactory, down_s: float, up_s: float
) -> int:
    """Take the pump house down for `down_s` and back for `up_s` until it is in outage.

    Returns how many times it went down; gives up after an hour.
    """
    for spell in range(1, int(3600 / (down_s + up_s)) + 1):
        take_down_pump_house(farm)
        await advance(hass, freezer, down_s)
        if pump_house_issue(hass) is not None:
            return spell
        take_down_pump_house(farm, available=True)
        await advance(hass, freezer, up_s)
    return 0


@pytest.mark.parametrize(("down_s", "up_s"), [(55.0, 2.0), (10.0, 10.0)])
async def test_a_flapping_device_raises_an_outage_saying_it_flaps_with_its_flap_count(
    hass: HomeAssistant,
    farm: Farm,
    hub: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
    down_s: float,
    up_s: float,
) -> None:
    degraded = async_capture_events(hass, EVENT_DEGRADED)

    spells = await flap(hass, farm, freezer, down_s, up_s)

    # Down 60 s in total within 5 minutes: the second spell for 55/2, the sixth for 10/10.
    assert spells == math.ceil(60.0 / down_s)
    issue = pump_house_issue(hass)
    assert issue is not None
    assert issue.translation_key == "device_flapping"
    assert issue.translation_placeholders == {
        "device": "Pump house",
        "seconds": "60",
        "window": "300",
    }
    devices = hass.states.get(UNAVAILABLE_DEVICES)
    assert devices.attributes["devices"] == ["Pump house"]
    assert devices.attributes["flaps"] == {"Pump house": spells}
    assert hass.states.get(DEGRADED).state == "on"
    assert hass.states.get(DEGRADED).attributes["reasons"][0].startswith("Pump house: flapping")
    assert len(degraded) == 1


async def test_a_flapping_device_stays_in_outage_through_brief_recoveries_and_ends_once_stable(
    hass: HomeAssistant, farm: Farm, hub: MockConfigEntry, freezer: FrozenDateTimeFactory
) -> None:
    degraded = async_capture_events(hass, EVENT_DEGRADED)
    recovered = async_capture_events(hass, EVENT_RECOVERED)
    assert await flap(hass, farm, freezer, 55.0, 2.0)
    for _ in range(30):  # half an hour more of it: one outage, one degraded event
        take_down_pump_house(farm, available=True)
        await advance(hass, freezer, 2.0)
        assert pump_house_issue(hass) is not None
        take_down_pump_house(farm)
        await advance(hass, freezer, 55.0)
    assert hass.states.get(UNAVAILABLE_DEVICES).attributes["flaps"] == {"Pump house": 6}

    take_down_pump_house(farm, available=True)
    await advance(hass, freezer, 60.0)
    assert pump_house_issue(hass) is not None  # 4 minutes of the last 5 were down
    await advance(hass, freezer, 300.0)

    assert pump_house_issue(hass) is None
    assert hass.states.get(DEGRADED).state == "off"
    assert (len(degraded), len(recovered)) == (1, 1)


async def test_a_device_down_once_briefly_in_a_while_is_no_outage(
    hass: HomeAssistant, farm: Farm, hub: MockConfigEntry, freezer: FrozenDateTimeFactory
) -> None:
    for _ in range(12):  # 20 s down every 3 minutes: at most 40 s within any 5 minutes
        take_down_pump_house(farm)
        await advance(hass, freezer, 20.0)
        take_down_pump_house(farm, available=True)
        await advance(hass, freezer, 160.0)

    assert pump_house_issue(hass) is None
    assert hass.states.get(DEGRADED).state == "off"
