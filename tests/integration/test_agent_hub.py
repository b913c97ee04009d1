"""The hub's degraded sensor and agents: outages past outage_alert, problems, start-up grace.

The agent's messages arrive through HA's MQTT integration with a mocked client,
time moves on the test clock; HA losing the broker is in test_agent_broker.py.
"""

from __future__ import annotations

import copy

import pytest
from freezegun.api import FrozenDateTimeFactory
from homeassistant.const import EVENT_HOMEASSISTANT_STARTED
from homeassistant.core import CoreState, HomeAssistant
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_capture_events
from pytest_homeassistant_custom_component.typing import MqttMockHAClient

from custom_components.farm_resilience.agent_link import AgentLink
from custom_components.farm_resilience.bounds import MAX_CHARS, MAX_TEXTS
from custom_components.farm_resilience.const import DOMAIN, EVENT_DEGRADED, EVENT_RECOVERED

from .support import (
    DEGRADED,
    HEALTHY,
    OFFLINE,
    ONLINE,
    WITH_PROBLEMS,
    WITH_TASKS,
    advance,
    publish_health,
    publish_status,
    reasons,
    save_options,
    state,
)

OFFLINE_REASON = "agent farm-east: offline for more than 60 s"
NO_STATUS_REASON = "agent farm-east: no status for more than 60 s"


async def deliver(hass: HomeAssistant, health: dict[str, object], status: str = ONLINE) -> None:
    """Deliver what the agent left retained, and let the hub take it in."""
    publish_status(hass, status, replayed=True)
    publish_health(hass, health, replayed=True)
    await hass.async_block_till_done()


async def test_agent_offline_past_outage_alert_degrades_the_hub_and_recovery_clears_it(
    hass: HomeAssistant, hub_and_agent: AgentLink, freezer: FrozenDateTimeFactory
) -> None:
    degraded = async_capture_events(hass, EVENT_DEGRADED)
    recovered = async_capture_events(hass, EVENT_RECOVERED)
    await deliver(hass, HEALTHY["health"])
    assert state(hass, "connectivity").state == "on"

    publish_status(hass, OFFLINE)
    await advance(hass, freezer, 59.0)
    assert reasons(hass) == []

    await advance(hass, freezer, 1.0)

    assert reasons(hass) == [OFFLINE_REASON]
    assert hass.states.get(DEGRADED).state == "on"
    assert [event.data["reasons"] for event in degraded] == [[OFFLINE_REASON]]

    publish_status(hass, ONLINE)
    await hass.async_block_till_done()
    assert reasons(hass) == []
    assert hass.states.get(DEGRADED).state == "off"
    assert [event.data["reasons"] for event in recovered] == [[]]


async def test_agent_problems_degrade_the_hub_in_the_agent_s_words_and_clear_when_healthy(
    hass: HomeAssistant, hub_and_agent: AgentLink
) -> None:
    await deliver(hass, WITH_PROBLEMS["health"])

    expected = [f"agent farm-east: {problem}" for problem in WITH_PROBLEMS["expect"]["problems"]]
    assert reasons(hass) == expected
    assert "agent farm-east: queue depth 140 > 100" in reasons(hass)

    publish_health(hass, HEALTHY["health"])
    await hass.async_block_till_done()
    assert reasons(hass) == []


async def test_a_status_other_than_ok_without_problems_still_degrades_the_hub(
    hass: HomeAssistant, hub_and_agent: AgentLink
) -> None:
    await deliver(hass, {**HEALTHY["health"], "status": "degraded"})

    assert reasons(hass) == ["agent farm-east: status degraded"]
    assert state(hass, "backend_problem").state == "on"


async def test_offline_agent_problems_are_not_reported_only_its_outage(
    hass: HomeAssistant, hub_and_agent: AgentLink, freezer: FrozenDateTimeFactory
) -> None:
    await deliver(hass, WITH_PROBLEMS["health"])
    assert len(reasons(hass)) == 4

    publish_status(hass, OFFLINE)
    await hass.async_block_till_done()
    assert reasons(hass) == []
    await advance(hass, freezer, 60.0)

    assert reasons(hass) == [OFFLINE_REASON]


async def test_a_hung_agent_online_but_silent_loses_its_figures_and_degrades_the_hub(
    hass: HomeAssistant, hub_and_agent: AgentLink, freezer: FrozenDateTimeFactory
) -> None:
    await deliver(hass, HEALTHY["health"])
    for probe_round in range(3):  # the agent probes every 30 s
        if probe_round:
            await advance(hass, freezer, 30.0)
        publish_health(hass, HEALTHY["health"])
    assert hub_and_agent.availability.silent_after == 90.0

    await advance(hass, freezer, 89.0)
    assert state(hass, "queue_depth").state == "12"
    await advance(hass, freezer, 2.0)  # its loop hangs: no health, but still connected

    assert state(hass, "queue_depth").state == "unavailable"
    assert state(hass, "connectivity").state == "on"
    await advance(hass, freezer, 60.0)
    assert reasons(hass) == [
        "agent farm-east: silent (online, but no health for 3 probe intervals) for more than 60 s"
    ]

    publish_health(hass, WITH_PROBLEMS["health"])
    await hass.async_block_till_done()
    assert state(hass, "queue_depth").state == "140"
    assert len(reasons(hass)) == 4


async def test_agent_down_during_start_up_raises_no_alarm_until_outage_alert_after_start(
    hass: HomeAssistant,
    mqtt_mock: MqttMockHAClient,
    hub_entry: MockConfigEntry,
    agent_entry: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
) -> None:
    hass.set_state(CoreState.starting)
    assert await hass.config_entries.async_setup(hub_entry.entry_id)  # the agent entry too
    publish_status(hass, OFFLINE, replayed=True)
    await advance(hass, freezer, 600.0)  # a slow start-up: no alarm however long it takes
    assert reasons(hass) == []

    hass.set_state(CoreState.running)
    hass.bus.async_fire(EVENT_HOMEASSISTANT_STARTED)
    await advance(hass, freezer, 59.0)
    assert reasons(hass) == []
    await advance(hass, freezer, 1.0)

    assert reasons(hass) == [OFFLINE_REASON]


async def test_an_agent_that_never_reported_is_an_outage_after_outage_alert(
    hass: HomeAssistant, hub_and_agent: AgentLink, freezer: FrozenDateTimeFactory
) -> None:
    await advance(hass, freezer, 59.0)
    assert reasons(hass) == []

    await advance(hass, freezer, 1.0)

    assert reasons(hass) == [NO_STATUS_REASON]


async def test_unloading_an_agent_entry_removes_its_reasons_from_the_hub(
    hass: HomeAssistant,
    hub_and_agent: AgentLink,
    hub_entry: MockConfigEntry,
    agent_entry: MockConfigEntry,
) -> None:
    await deliver(hass, WITH_PROBLEMS["health"])
    assert len(reasons(hass)) == 4

    assert await hass.config_entries.async_unload(agent_entry.entry_id)
    await hass.async_block_till_done()

    assert reasons(hass) == []
    assert hub_entry.runtime_data.agents.links() == []


async def test_a_hub_added_after_the_agent_finds_it(
    hass: HomeAssistant, agent: AgentLink, options: dict[str, object]
) -> None:
    await deliver(hass, WITH_PROBLEMS["health"])
    assert agent.data.available

    hub_entry = MockConfigEntry(domain=DOMAIN, unique_id="hub", data={}, options=options)
    hub_entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(hub_entry.entry_id)
    await hass.async_block_till_done()

    assert len(reasons(hass)) == 4
    assert hub_entry.runtime_data.agents.links() == [agent]


async def test_ten_thousand_long_problems_reach_attributes_events_and_reasons_bounded(
    hass: HomeAssistant, hub_and_agent: AgentLink
) -> None:
    degraded = async_capture_events(hass, EVENT_DEGRADED)
    problems = [f"probe {n} failed: " + "x" * 1000 for n in range(10_000)]

    await deliver(hass, {**HEALTHY["health"], "status": "degraded", "problems": problems})

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
    hub_and_agent: AgentLink,
    hub_entry: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
) -> None:
    degraded = async_capture_events(hass, EVENT_DEGRADED)
    recovered = async_capture_events(hass, EVENT_RECOVERED)
    await advance(hass, freezer, 120.0)
    assert reasons(hass) == [NO_STATUS_REASON]

    await save_options(hass, hub_entry, latency_target=4.0)
    await advance(hass, freezer, 1.0)

    assert reasons(hass) == [NO_STATUS_REASON]
    assert (len(degraded), len(recovered)) == (1, 0)


@pytest.mark.parametrize("options", [{"outage_alert": 30}])
async def test_outage_alert_of_the_hub_applies_to_agents(
    hass: HomeAssistant, hub_and_agent: AgentLink, freezer: FrozenDateTimeFactory
) -> None:
    await deliver(hass, HEALTHY["health"], status=OFFLINE)

    await advance(hass, freezer, 30.0)

    assert reasons(hass) == ["agent farm-east: offline for more than 30 s"]


async def test_an_agent_objective_at_risk_degrades_the_hub_though_the_agent_reports_ok(
    hass: HomeAssistant, hub_and_agent: AgentLink
) -> None:
    await deliver(hass, WITH_TASKS["health"])

    assert reasons(hass) == [
        "agent farm-east: SLO task_success at risk (99.6 % against 99.5 %, 40 % of its error "
        "budget left; burning its budget 15.0x over 1 h and 7.5x over 6 h)"
    ]
    assert state(hass, "backend_problem").state == "off"  # the agent's own verdict: ok


async def test_an_agent_objective_breached_and_a_task_breach_it_reports_both_degrade_the_hub(
    hass: HomeAssistant, hub_and_agent: AgentLink
) -> None:
    health = copy.deepcopy(WITH_TASKS["health"])
    health["status"] = "degraded"
    health["problems"] = ["task success 97.9 % < 99.5 %"]
    objective = health["slo"]["objectives"][1]
    objective.update(status="breached", sli_pct=97.9, budget_remaining_pct=-320.0)

    await deliver(hass, health)

    assert reasons(hass) == [
        "agent farm-east: task success 97.9 % < 99.5 %",
        "agent farm-east: SLO task_success breached (97.9 % against 99.5 %, -320 % of its "
        "error budget left)",
    ]
