"""The hub's degraded sensor and agents: outages past outage_alert, problems, start-up grace."""

from __future__ import annotations

import pytest
from freezegun.api import FrozenDateTimeFactory
from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import EVENT_HOMEASSISTANT_STARTED
from homeassistant.core import CoreState, HomeAssistant
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_capture_events

from custom_components.farm_resilience.bounds import MAX_CHARS, MAX_TEXTS
from custom_components.farm_resilience.const import DOMAIN, EVENT_DEGRADED, EVENT_RECOVERED
from tools.services import Mosquitto

from .mqtt_support import (
    ACCEPTED,
    OFFLINE,
    ONLINE,
    StandInAgent,
    advance_live,
    restart_broker,
    state,
    wait_until,
)
from .options_support import save_options

DEGRADED = "binary_sensor.farm_resilience_degraded"
HEALTHY = ACCEPTED[0]
WITH_PROBLEMS = ACCEPTED[1]
OFFLINE_REASON = "agent farm-east: offline for more than 60 s"


def reasons(hass: HomeAssistant) -> list[str]:
    """Return the hub's degraded reasons."""
    degraded = hass.states.get(DEGRADED)
    assert degraded is not None
    return list(degraded.attributes["reasons"])


async def set_up_hub_and_agent(
    hass: HomeAssistant, hub_entry: MockConfigEntry, agent_entry: MockConfigEntry
) -> None:
    """Set up the integration: the hub and the agent entry come up together."""
    assert await hass.config_entries.async_setup(hub_entry.entry_id)
    await hass.async_block_till_done()
    assert agent_entry.state is ConfigEntryState.LOADED


async def test_agent_offline_past_outage_alert_degrades_the_hub_and_recovery_clears_it(
    hass: HomeAssistant,
    mqtt_entry: MockConfigEntry,
    broker: Mosquitto,
    stand_in: StandInAgent,
    hub_entry: MockConfigEntry,
    agent_entry: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
) -> None:
    degraded = async_capture_events(hass, EVENT_DEGRADED)
    recovered = async_capture_events(hass, EVENT_RECOVERED)
    stand_in.status(ONLINE)
    stand_in.health(HEALTHY["health"])
    await set_up_hub_and_agent(hass, hub_entry, agent_entry)
    await wait_until(hass, freezer, lambda: state(hass, "connectivity").state == "on", "online")

    stand_in.die()
    await wait_until(hass, freezer, lambda: state(hass, "connectivity").state == "off", "will")
    await advance_live(hass, freezer, 59.0)
    assert reasons(hass) == []

    await advance_live(hass, freezer, 1.0)

    assert reasons(hass) == [OFFLINE_REASON]
    assert hass.states.get(DEGRADED).state == "on"
    assert [event.data["reasons"] for event in degraded] == [[OFFLINE_REASON]]

    back = StandInAgent(broker.port)
    try:
        back.status(ONLINE)
        await wait_until(hass, freezer, lambda: reasons(hass) == [], "recovery")
    finally:
        back.leave()
    assert hass.states.get(DEGRADED).state == "off"
    assert [event.data["reasons"] for event in recovered] == [[]]


async def test_agent_problems_degrade_the_hub_in_the_agent_s_words_and_clear_when_healthy(
    hass: HomeAssistant,
    mqtt_entry: MockConfigEntry,
    stand_in: StandInAgent,
    hub_entry: MockConfigEntry,
    agent_entry: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
) -> None:
    stand_in.status(ONLINE)
    stand_in.health(WITH_PROBLEMS["health"])
    await set_up_hub_and_agent(hass, hub_entry, agent_entry)

    expected = [f"agent farm-east: {problem}" for problem in WITH_PROBLEMS["expect"]["problems"]]
    await wait_until(hass, freezer, lambda: reasons(hass) == expected, "the problems")
    assert "agent farm-east: queue depth 140 > 100" in reasons(hass)

    stand_in.health(HEALTHY["health"])
    await wait_until(hass, freezer, lambda: reasons(hass) == [], "healthy again")


async def test_a_status_other_than_ok_without_problems_still_degrades_the_hub(
    hass: HomeAssistant,
    mqtt_entry: MockConfigEntry,
    stand_in: StandInAgent,
    hub_entry: MockConfigEntry,
    agent_entry: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
) -> None:
    stand_in.status(ONLINE)
    stand_in.health({**HEALTHY["health"], "status": "degraded"})
    await set_up_hub_and_agent(hass, hub_entry, agent_entry)

    await wait_until(
        hass, freezer, lambda: reasons(hass) == ["agent farm-east: status degraded"], "reason"
    )
    assert state(hass, "backend_problem").state == "on"


async def test_offline_agent_problems_are_not_reported_only_its_outage(
    hass: HomeAssistant,
    mqtt_entry: MockConfigEntry,
    stand_in: StandInAgent,
    hub_entry: MockConfigEntry,
    agent_entry: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
) -> None:
    stand_in.status(ONLINE)
    stand_in.health(WITH_PROBLEMS["health"])
    await set_up_hub_and_agent(hass, hub_entry, agent_entry)
    await wait_until(hass, freezer, lambda: len(reasons(hass)) == 4, "the problems")

    stand_in.status(OFFLINE)
    await wait_until(hass, freezer, lambda: reasons(hass) == [], "old problems dropped")
    await advance_live(hass, freezer, 60.0)

    assert reasons(hass) == [OFFLINE_REASON]


async def test_a_hung_agent_online_but_silent_loses_its_figures_and_degrades_the_hub(
    hass: HomeAssistant,
    mqtt_entry: MockConfigEntry,
    stand_in: StandInAgent,
    hub_entry: MockConfigEntry,
    agent_entry: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
) -> None:
    stand_in.status(ONLINE)
    stand_in.health(HEALTHY["health"])
    await set_up_hub_and_agent(hass, hub_entry, agent_entry)
    link = agent_entry.runtime_data
    await wait_until(hass, freezer, lambda: link.health is not None, "the retained health")
    for probe_round in range(1, 4):  # the agent probes every 30 s
        if probe_round > 1:
            await advance_live(hass, freezer, 30.0)
        before = link.health_received_at
        stand_in.health(HEALTHY["health"])
        await wait_until(
            hass, freezer, lambda seen=before: link.health_received_at != seen, "live health"
        )
    silent_after = link.silent_after
    assert silent_after == pytest.approx(90.0, abs=1.0)

    await advance_live(hass, freezer, silent_after - 1.0)
    assert state(hass, "queue_depth").state == "12"
    await advance_live(hass, freezer, 2.0)  # its loop hangs: no health, but still connected

    assert state(hass, "queue_depth").state == "unavailable"
    assert state(hass, "connectivity").state == "on"
    await advance_live(hass, freezer, 60.0)
    assert reasons(hass) == [
        "agent farm-east: silent (online, but no health for 3 probe intervals) for more than 60 s"
    ]

    stand_in.health(WITH_PROBLEMS["health"])
    await wait_until(hass, freezer, lambda: state(hass, "queue_depth").state == "140", "back")
    assert len(reasons(hass)) == 4


async def test_agent_down_during_start_up_raises_no_alarm_until_outage_alert_after_start(
    hass: HomeAssistant,
    mqtt_entry: MockConfigEntry,
    stand_in: StandInAgent,
    hub_entry: MockConfigEntry,
    agent_entry: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
) -> None:
    hass.set_state(CoreState.starting)
    stand_in.status(OFFLINE)
    await set_up_hub_and_agent(hass, hub_entry, agent_entry)
    await wait_until(hass, freezer, lambda: agent_entry.runtime_data.status == OFFLINE, "status")
    await advance_live(hass, freezer, 600.0)  # a slow start-up: no alarm however long it takes
    assert reasons(hass) == []

    hass.set_state(CoreState.running)
    hass.bus.async_fire(EVENT_HOMEASSISTANT_STARTED)
    await advance_live(hass, freezer, 59.0)
    assert reasons(hass) == []
    await advance_live(hass, freezer, 1.0)

    assert reasons(hass) == [OFFLINE_REASON]


async def test_an_agent_that_never_reported_is_an_outage_after_outage_alert(
    hass: HomeAssistant,
    mqtt_entry: MockConfigEntry,
    hub_entry: MockConfigEntry,
    agent_entry: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
) -> None:
    await set_up_hub_and_agent(hass, hub_entry, agent_entry)
    await advance_live(hass, freezer, 59.0)
    assert reasons(hass) == []

    await advance_live(hass, freezer, 1.0)

    assert reasons(hass) == ["agent farm-east: no status for more than 60 s"]


@pytest.mark.parametrize("options", [{"outage_alert": 30}])
async def test_ha_losing_the_broker_makes_agents_unreachable_not_offline(
    hass: HomeAssistant,
    mqtt_entry: MockConfigEntry,
    broker: Mosquitto,
    stand_in: StandInAgent,
    hub_entry: MockConfigEntry,
    agent_entry: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    stand_in.status(ONLINE)
    stand_in.health(HEALTHY["health"])
    await set_up_hub_and_agent(hass, hub_entry, agent_entry)
    await wait_until(hass, freezer, lambda: state(hass, "connectivity").state == "on", "online")
    stand_in.leave()

    await hass.async_add_executor_job(broker.stop)
    try:
        await wait_until(hass, freezer, lambda: not agent_entry.runtime_data.mqtt_connected, "")
        await advance_live(hass, freezer, 30.0)
        assert reasons(hass) == [
            "agent farm-east: unreachable (Home Assistant is not connected to the broker) "
            "for more than 30 s"
        ]
        assert state(hass, "connectivity").state == "unavailable"
    finally:
        await hass.async_add_executor_job(broker.start)

    await restart_broker(hass, freezer, caplog, broker)
    await wait_until(hass, freezer, lambda: reasons(hass) == [], "reconnected")
    assert state(hass, "connectivity").state == "on"


async def test_unloading_an_agent_entry_removes_its_reasons_from_the_hub(
    hass: HomeAssistant,
    mqtt_entry: MockConfigEntry,
    stand_in: StandInAgent,
    hub_entry: MockConfigEntry,
    agent_entry: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
) -> None:
    stand_in.status(ONLINE)
    stand_in.health(WITH_PROBLEMS["health"])
    await set_up_hub_and_agent(hass, hub_entry, agent_entry)
    await wait_until(hass, freezer, lambda: len(reasons(hass)) == 4, "the problems")

    assert await hass.config_entries.async_unload(agent_entry.entry_id)
    await hass.async_block_till_done()

    assert reasons(hass) == []
    assert hub_entry.runtime_data.agents.links() == []


async def test_a_hub_added_after_the_agent_finds_it(
    hass: HomeAssistant,
    mqtt_entry: MockConfigEntry,
    stand_in: StandInAgent,
    agent_entry: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
    options: dict[str, object],
) -> None:
    stand_in.status(ONLINE)
    stand_in.health(WITH_PROBLEMS["health"])
    assert await hass.config_entries.async_setup(agent_entry.entry_id)
    link = agent_entry.runtime_data
    await wait_until(hass, freezer, lambda: link.available and link.health is not None, "agent")

    hub_entry = MockConfigEntry(domain=DOMAIN, unique_id="hub", data={}, options=options)
    hub_entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(hub_entry.entry_id)
    await hass.async_block_till_done()

    assert len(reasons(hass)) == 4
    assert hub_entry.runtime_data.agents.links() == [agent_entry.runtime_data]


async def test_ten_thousand_long_problems_reach_attributes_events_and_reasons_bounded(
    hass: HomeAssistant,
    mqtt_entry: MockConfigEntry,
    stand_in: StandInAgent,
    hub_entry: MockConfigEntry,
    agent_entry: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
) -> None:
    degraded = async_capture_events(hass, EVENT_DEGRADED)
    problems = [f"probe {n} failed: " + "x" * 1000 for n in range(10_000)]
    stand_in.status(ONLINE)
    stand_in.health({**HEALTHY["health"], "status": "degraded", "problems": problems})
    await set_up_hub_and_agent(hass, hub_entry, agent_entry)
    await wait_until(hass, freezer, lambda: bool(reasons(hass)), "the problems")

    shown = state(hass, "backend_problem").attributes["problems"]
    assert len(shown) == MAX_TEXTS
    assert all(len(problem) <= MAX_CHARS for problem in shown)
    assert shown[0].startswith("probe 0 failed: xxx")
    assert shown[-1] == f"and {10_000 - (MAX_TEXTS - 1)} more"
    hub_reasons = reasons(hass)
    assert len(hub_reasons) == MAX_TEXTS
    assert all(len(reason) <= MAX_CHARS for reason in hub_reasons)
    assert hub_reasons[0].startswith("agent farm-east: probe 0 failed: xxx")
    assert [event.data["reasons"] for event in degraded] == [hub_reasons]


async def test_saving_the_hub_options_keeps_an_agent_outage_without_a_second_degraded(
    hass: HomeAssistant,
    mqtt_entry: MockConfigEntry,
    hub_entry: MockConfigEntry,
    agent_entry: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
) -> None:
    degraded = async_capture_events(hass, EVENT_DEGRADED)
    recovered = async_capture_events(hass, EVENT_RECOVERED)
    await set_up_hub_and_agent(hass, hub_entry, agent_entry)
    await advance_live(hass, freezer, 120.0)
    assert reasons(hass) == ["agent farm-east: no status for more than 60 s"]

    await save_options(hass, hub_entry, latency_target=4.0)
    await advance_live(hass, freezer, 1.0)

    assert reasons(hass) == ["agent farm-east: no status for more than 60 s"]
    assert (len(degraded), len(recovered)) == (1, 0)
