"""An agent's device on a real broker: the last will, broker restarts, replays after reconnects."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from freezegun.api import FrozenDateTimeFactory
from homeassistant.core import HomeAssistant
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.farm_resilience.agent_link import AgentLink
from tools.services import Mosquitto

from .support import (
    FIGURES,
    HEALTHY,
    OFFLINE,
    ONLINE,
    WITH_PROBLEMS,
    StandInAgent,
    advance_live,
    errors_logged,
    reasons,
    restart_broker,
    settle,
    shown,
    state,
    unavailable_figures,
    wait_until,
)


async def wait_for_values(
    hass: HomeAssistant, freezer: FrozenDateTimeFactory, vector: dict[str, Any]
) -> None:
    """Wait until the agent's entities show the vector's `expect`, then check them once more."""
    expect = vector["expect"]
    await wait_until(hass, freezer, lambda: shown(hass, expect) == expect, vector["name"])
    assert shown(hass, expect) == expect


def with_ts(vector: dict[str, Any], ts: str) -> dict[str, Any]:
    """Return a copy of a vector's health published at `ts`."""
    health = copy.deepcopy(vector["health"])
    health["ts"] = ts
    return health


async def test_killed_agent_last_will_makes_figures_unavailable_and_restart_restores_them(
    hass: HomeAssistant,
    broker: Mosquitto,
    stand_in: StandInAgent,
    real_agent_online: AgentLink,
    freezer: FrozenDateTimeFactory,
) -> None:
    stand_in.die()
    await wait_until(
        hass, freezer, lambda: state(hass, "connectivity").state == "off", "the last will"
    )

    assert unavailable_figures(hass) == FIGURES
    assert state(hass, "backend_problem").state == "unavailable"

    restarted = StandInAgent(broker.port)
    try:
        restarted.status(ONLINE)
        await wait_for_values(hass, freezer, HEALTHY)  # the last good values come back
    finally:
        restarted.leave()


@pytest.mark.parametrize(
    ("replayed_ts", "available"),
    [("2026-11-26T04:00:00.123Z", False), ("2026-11-26T05:00:00.000Z", True)],
    ids=["same_health_as_before_the_offline", "newer_health"],
)
async def test_replayed_online_counts_only_with_health_newer_than_the_offline(
    hass: HomeAssistant,
    broker: Mosquitto,
    stand_in: StandInAgent,
    real_agent_online: AgentLink,
    freezer: FrozenDateTimeFactory,
    caplog: pytest.LogCaptureFixture,
    replayed_ts: str,
    available: bool,
) -> None:
    agent = real_agent_online.availability
    stand_in.status(OFFLINE)
    await wait_until(hass, freezer, lambda: not agent.online, "offline")
    stand_in.leave()

    def broker_replays_online() -> None:
        """A broker that lost the will in a crash (or an agent back while HA was away)."""
        old = StandInAgent(broker.port)
        old.status(ONLINE)
        old.health(with_ts(HEALTHY, replayed_ts))
        old.leave()

    health_seen_at = agent.health_received_at
    await restart_broker(hass, freezer, caplog, broker, broker_replays_online)
    await wait_until(hass, freezer, lambda: agent.status == ONLINE, "the replayed status")
    await wait_until(
        hass, freezer, lambda: agent.health_received_at != health_seen_at, "the replayed health"
    )
    await settle(hass)

    assert agent.online is available
    assert state(hass, "connectivity").state == ("on" if available else "off")
    expected_figures = [] if available else FIGURES
    assert unavailable_figures(hass) == expected_figures


async def test_broker_restart_while_ha_runs_reconnects_without_errors_and_values_stay_right(
    hass: HomeAssistant,
    broker: Mosquitto,
    stand_in: StandInAgent,
    real_agent_online: AgentLink,
    freezer: FrozenDateTimeFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    stand_in.leave()

    await hass.async_add_executor_job(broker.stop)
    await wait_until(
        hass, freezer, lambda: state(hass, "connectivity").state == "unavailable", "the outage"
    )
    assert unavailable_figures(hass) == FIGURES
    await hass.async_add_executor_job(broker.start)
    await restart_broker(hass, freezer, caplog, broker)  # a second restart, before HA is back

    await wait_for_values(hass, freezer, HEALTHY)  # from the retained replay
    back = StandInAgent(broker.port)
    try:
        back.health(WITH_PROBLEMS["health"])
        await wait_for_values(hass, freezer, WITH_PROBLEMS)
    finally:
        back.leave()
    assert errors_logged(caplog) == []


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
    assert await hass.config_entries.async_setup(hub_entry.entry_id)  # the agent entry too
    await wait_until(hass, freezer, lambda: state(hass, "connectivity").state == "on", "online")
    stand_in.leave()

    await hass.async_add_executor_job(broker.stop)
    try:
        agent = agent_entry.runtime_data.availability
        await wait_until(hass, freezer, lambda: not agent.mqtt_connected, "the lost broker")
        await advance_live(hass, freezer, 30.0)
        assert reasons(hass) == [
            "MQTT broker: Home Assistant disconnected for more than 30 s",
            "agent farm-east: unreachable (Home Assistant is not connected to the broker) "
            "for more than 30 s",
        ]
        assert state(hass, "connectivity").state == "unavailable"
    finally:
        await hass.async_add_executor_job(broker.start)

    await restart_broker(hass, freezer, caplog, broker)
    await wait_until(hass, freezer, lambda: reasons(hass) == [], "reconnected")
    assert state(hass, "connectivity").state == "on"
