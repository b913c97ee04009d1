"""The real `farm-agent run` on real services, as Home Assistant sees it through MQTT."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from freezegun.api import FrozenDateTimeFactory
from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from tests.support.agent import AgentProcess, agent_config, with_secret, write_config
from tests.support.mqtt import Publisher
from tools.services import Mosquitto, PgBouncer, Postgres

from .support import (
    advance_live,
    clear_retained,
    discovered_flows,
    download_diagnostics,
    reasons,
    state,
    wait_until,
)

AGENT = "farm-real"
PREFIX = "farm_resilience"
TOPICS = (f"{PREFIX}/agent/{AGENT}/status", f"{PREFIX}/agent/{AGENT}/health")
READINGS = 25
# The agent works in real time; each 10 ms round of `wait_until` is one chance to see it.
AGENT_TIMEOUT_S = 30.0


@pytest.fixture
def agent_process(
    socket_enabled: None, request: pytest.FixtureRequest, broker: Mosquitto, tmp_path: Path
) -> Iterator[AgentProcess]:
    """farm-agent `farm-real` (not started) on the session's Postgres, PgBouncer and broker."""
    postgres: Postgres = request.getfixturevalue("postgres")
    pgbouncer: PgBouncer = request.getfixturevalue("pgbouncer")
    clear_retained(broker.port, *TOPICS)
    config = agent_config(
        tmp_path,
        agent_id=AGENT,
        mqtt_port=broker.port,
        # Both carry the test secret: nothing Home Assistant shows may reveal it.
        pooler_dsn=with_secret(pgbouncer.dsn),
        direct_dsn=with_secret(postgres.dsn),
        queue="ha_farm_real",
        probes={"interval_s": 1},
        # The agent's own HA MQTT discovery would leave retained configs on the shared broker.
        mqtt={"discovery_prefix": None},
    )
    process = AgentProcess(write_config(tmp_path / f"{AGENT}.yaml", config))
    yield process
    process.stop()
    broker.start()  # if the test failed while it was stopped
    clear_retained(broker.port, *TOPICS)


async def start(hass: HomeAssistant, agent: AgentProcess) -> None:
    """Start the agent and wait until it is connected to the broker and the database."""
    agent.start()
    await hass.async_add_executor_job(agent.wait_ready)


async def test_real_agent_is_discovered_killed_unavailable_and_degrades_the_hub_then_recovers(
    hass: HomeAssistant,
    mqtt_entry: MockConfigEntry,
    broker: Mosquitto,
    hub_entry: MockConfigEntry,
    agent_process: AgentProcess,
    freezer: FrozenDateTimeFactory,
    hass_client: ClientSessionGenerator,
) -> None:
    assert await hass.config_entries.async_setup(hub_entry.entry_id)
    await start(hass, agent_process)

    # Discovered from its retained status; confirming creates the device.
    await wait_until(
        hass, freezer, lambda: bool(discovered_flows(hass)), "discovery", AGENT_TIMEOUT_S
    )
    result = await hass.config_entries.flow.async_configure(
        discovered_flows(hass)[0]["flow_id"], {}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["data"] == {"agent_id": AGENT}
    entry = result["result"]
    await wait_until(
        hass,
        freezer,
        lambda: state(hass, "route", AGENT).state == "pooler",
        "the first health",
        AGENT_TIMEOUT_S,
    )
    assert state(hass, "connectivity", AGENT).state == "on"
    assert state(hass, "backend_problem", AGENT).state == "off"
    assert state(hass, "backend_problem", AGENT).attributes["problems"] == []
    assert float(state(hass, "pooler_latency", AGENT).state) > 0
    assert float(state(hass, "direct_latency", AGENT).state) > 0
    assert state(hass, "dlq_depth", AGENT).state == "0"

    # Readings go through; the relayed total follows them.
    farm = Publisher(broker.port, "ha-real-agent-field")
    try:
        farm.publish_all([(f"{AGENT}/field1/moisture", f'{{"n": {n}}}') for n in range(READINGS)])
    finally:
        farm.close()
    await wait_until(
        hass,
        freezer,
        lambda: state(hass, "relayed_total", AGENT).state == str(READINGS),
        "the relayed readings",
        AGENT_TIMEOUT_S,
    )
    assert state(hass, "spool_depth", AGENT).state == "0"
    assert reasons(hass) == []

    # SIGKILL: the broker delivers the last will, the figures become unavailable...
    await hass.async_add_executor_job(agent_process.kill)
    await wait_until(
        hass, freezer, lambda: state(hass, "connectivity", AGENT).state == "off", "the last will"
    )
    assert state(hass, "route", AGENT).state == "unavailable"
    assert state(hass, "relayed_total", AGENT).state == "unavailable"
    # ...and the hub is degraded once outage_alert (60 s) has passed.
    await advance_live(hass, freezer, 59.0)
    assert reasons(hass) == []
    await advance_live(hass, freezer, 1.0)
    assert reasons(hass) == [f"agent {AGENT}: offline for more than 60 s"]

    # Restarted: online again, fresh figures, the hub recovers.
    await start(hass, agent_process)
    await wait_until(
        hass,
        freezer,
        lambda: state(hass, "connectivity", AGENT).state == "on" and reasons(hass) == [],
        "recovery",
        AGENT_TIMEOUT_S,
    )
    await wait_until(
        hass,
        freezer,
        lambda: state(hass, "relayed_total", AGENT).state == "0",
        "the restarted agent's health",
        AGENT_TIMEOUT_S,
    )
    assert state(hass, "route", AGENT).state == "pooler"
    assert entry.state is ConfigEntryState.LOADED
    # The agent's own health, as the diagnostics show it, names no secret.
    diagnostics = await download_diagnostics(hass, hass_client, entry)
    assert diagnostics["last_health"]["backend"]["route"] == "pooler"
    await download_diagnostics(hass, hass_client, hub_entry)
