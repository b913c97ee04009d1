"""Fixtures of the Home Assistant tests: the simulated farm, the hub, agents, MQTT."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from unittest.mock import Mock, patch

# Imported before any test freezes time: its dataclasses cannot be built under freezegun.
import homeassistant.components.mqtt.config_flow  # noqa: F401
import pytest
from freezegun.api import FrozenDateTimeFactory
from homeassistant.components import mqtt
from homeassistant.const import Platform
from homeassistant.core import Event, HomeAssistant
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_capture_events
from pytest_homeassistant_custom_component.syrupy import HomeAssistantSnapshotExtension
from pytest_homeassistant_custom_component.typing import MqttMockHAClient, MqttMockPahoClient
from syrupy.assertion import SnapshotAssertion

from custom_components.farm_resilience import PLATFORMS
from custom_components.farm_resilience.agent_link import AgentLink
from custom_components.farm_resilience.const import (
    DEFAULT_OPTIONS,
    DOMAIN,
    EVENT_COMMAND,
    HUB_NAME,
)
from tests.support.agent import TEST_SECRET
from tools.services import Mosquitto

from .sim import LAYOUT, Farm, Layout, async_setup_farm
from .support import (
    AGENT_ID,
    DIAGNOSTICS_DOWNLOADED,
    HEALTH_TOPIC,
    HEALTHY,
    INTEGRATION_LOGGER,
    ONLINE,
    STATUS_TOPIC,
    WITH_PROBLEMS,
    StandInAgent,
    a_morning_on_the_farm,
    clear_retained,
    publish_health,
    publish_status,
    shown,
    wait_for_birth,
    wait_until,
)


@pytest.fixture(scope="session", autouse=True)
def no_secret_in_any_diagnostics_download() -> Iterator[None]:
    """After the session: no diagnostics download shows the suite's test secret."""
    yield
    leaks = [what for what, text in DIAGNOSTICS_DOWNLOADED if TEST_SECRET in text]
    if leaks:
        pytest.fail(f"a test secret was shown in the diagnostics of: {', '.join(leaks)}")


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations(enable_custom_integrations: None) -> None:
    """Let Home Assistant load custom_components/farm_resilience."""


@pytest.fixture(autouse=True)
def no_integration_warnings(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Fail any test in which the integration logs a warning or an error."""
    caplog.set_level(logging.DEBUG, logger=INTEGRATION_LOGGER)
    yield
    loud = [
        record
        for record in caplog.records
        if record.name.startswith(INTEGRATION_LOGGER) and record.levelno >= logging.WARNING
    ]
    assert not loud, [record.getMessage() for record in loud]


@pytest.fixture
def snapshot(snapshot: SnapshotAssertion) -> SnapshotAssertion:
    """Syrupy's snapshot, serialising states and registry entries as Home Assistant's tests do."""
    return snapshot.use_extension(HomeAssistantSnapshotExtension)


@pytest.fixture
def platforms() -> list[Platform]:
    """The integration's platforms set up; snapshot tests of one platform override it."""
    return list(PLATFORMS)


@pytest.fixture(autouse=True)
def only_platforms(platforms: list[Platform]) -> Iterator[None]:
    """Set up (and unload) only `platforms`, until Home Assistant has stopped."""
    with patch("custom_components.farm_resilience.PLATFORMS", platforms):
        yield


# -- The farm and the hub -------------------------------------------------------------


@pytest.fixture
def options() -> dict[str, Any]:
    """Options of the hub entry; tests override single keys."""
    return dict(DEFAULT_OPTIONS)


@pytest.fixture
def hub_entry(hass: HomeAssistant, options: dict[str, Any]) -> MockConfigEntry:
    """The hub config entry, added but not set up."""
    entry = MockConfigEntry(
        domain=DOMAIN,
        title=HUB_NAME,
        unique_id="hub",
        data={},
        options=options,
        entry_id="01JHUBENTRY0000000000000000",
    )
    entry.add_to_hass(hass)
    return entry


@pytest.fixture
def layout() -> Layout:
    """Devices of the simulated farm; test modules override it for bigger farms."""
    return LAYOUT


@pytest.fixture
async def farm(hass: HomeAssistant, freezer: FrozenDateTimeFactory, layout: Layout) -> Farm:
    """The simulated farm, set up, with time frozen."""
    farm = Farm(hass)
    await async_setup_farm(hass, farm, layout)
    return farm


@pytest.fixture
def command_events(hass: HomeAssistant) -> list[Event[Any]]:
    """Every `farm_resilience_command` event (one per outcome) fired during the test."""
    return async_capture_events(hass, EVENT_COMMAND)


@pytest.fixture
async def hub(hass: HomeAssistant, farm: Farm, hub_entry: MockConfigEntry) -> MockConfigEntry:
    """The hub set up on top of the simulated farm."""
    assert await hass.config_entries.async_setup(hub_entry.entry_id)
    await hass.async_block_till_done()
    return hub_entry


@pytest.fixture
async def hub_after_a_morning(
    hass: HomeAssistant, farm: Farm, hub: MockConfigEntry, freezer: FrozenDateTimeFactory
) -> MockConfigEntry:
    """The hub after a command succeeded, one timed out and a device was down a minute."""
    await a_morning_on_the_farm(hass, farm, freezer)
    return hub


# -- Agents ---------------------------------------------------------------------------


@pytest.fixture
def agent_entry(hass: HomeAssistant) -> MockConfigEntry:
    """The entry of agent farm-east (the contract vectors' agent), added but not set up."""
    entry = MockConfigEntry(
        domain=DOMAIN,
        title=AGENT_ID,
        unique_id=f"agent_{AGENT_ID}",
        data={"agent_id": AGENT_ID},
        entry_id="01JAGENTENTRY00000000000000",
    )
    entry.add_to_hass(hass)
    return entry


@pytest.fixture
def mqtt_config_entry_data() -> dict[str, Any]:
    """HA's MQTT entry (mocked client) logs in with the suite's test secret.

    So every diagnostics download of an MQTT test has a secret in reach to leak.
    """
    return {"broker": "mock-broker", "username": TEST_SECRET, "password": TEST_SECRET}


@pytest.fixture
def mqtt_mock(
    mqtt_mock: MqttMockHAClient, mqtt_client_mock: MqttMockPahoClient
) -> Iterator[MqttMockHAClient]:
    """HA's MQTT integration with a mocked client, its socket closed after the test.

    HA's MQTT client runs a timer while its socket is open; a real socket closes
    when the integration unloads, the mocked one only when told.
    """
    yield mqtt_mock
    mqtt_client_mock.on_socket_close(mqtt_client_mock, None, Mock(fileno=Mock(return_value=-1)))


@pytest.fixture
async def agent(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    mqtt_mock: MqttMockHAClient,
    agent_entry: MockConfigEntry,
) -> AgentLink:
    """Agent farm-east's entry set up on HA's MQTT integration (mocked client), time frozen.

    Nothing is received yet: tests deliver what the broker would (support's
    `publish_status` / `publish_health`, `replayed=True` for retained messages).
    """
    assert await hass.config_entries.async_setup(agent_entry.entry_id)
    await hass.async_block_till_done()
    assert isinstance(agent_entry.runtime_data, AgentLink)
    return agent_entry.runtime_data


@pytest.fixture
async def hub_and_agent(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    mqtt_mock: MqttMockHAClient,
    hub_entry: MockConfigEntry,
    agent_entry: MockConfigEntry,
) -> AgentLink:
    """The hub and agent farm-east's entry, set up together on mocked MQTT; the agent's link."""
    assert await hass.config_entries.async_setup(hub_entry.entry_id)
    await hass.async_block_till_done()
    assert isinstance(agent_entry.runtime_data, AgentLink)
    return agent_entry.runtime_data


@pytest.fixture
async def agent_with_problems(
    hass: HomeAssistant, agent: AgentLink, agent_entry: MockConfigEntry
) -> MockConfigEntry:
    """Agent farm-east online, on its direct route, reporting problems (a contract vector)."""
    publish_status(hass, ONLINE, replayed=True)
    publish_health(hass, WITH_PROBLEMS["health"], replayed=True)
    return agent_entry


# -- The real broker (last will, reconnects, discovery) -------------------------------


@pytest.fixture
def broker(socket_enabled: None, request: pytest.FixtureRequest) -> Iterator[Mosquitto]:
    """The session's throwaway Mosquitto, reachable: HA tests allow loopback sockets only here.

    Requested lazily so the session broker starts while sockets are allowed; running
    again after the test even if the test failed while it was stopped.
    """
    mosquitto: Mosquitto = request.getfixturevalue("mosquitto")
    clear_retained(mosquitto.port, STATUS_TOPIC, HEALTH_TOPIC)
    yield mosquitto
    mosquitto.start()


@pytest.fixture
async def mqtt_entry(
    hass: HomeAssistant,
    broker: Mosquitto,
    tmp_path: Path,
    freezer: FrozenDateTimeFactory,
    caplog: pytest.LogCaptureFixture,
) -> AsyncIterator[MockConfigEntry]:
    """Home Assistant's own MQTT integration connected to the throwaway broker, time frozen.

    It logs in with the suite's test secret (the broker lets anyone in), so that
    every diagnostics download of an MQTT test has a secret in reach to leak.
    """
    (tmp_path / "configuration.yaml").write_text("")
    hass.config.config_dir = str(tmp_path)
    entry = MockConfigEntry(
        domain="mqtt",
        data={
            "broker": broker.host,
            "port": broker.port,
            "username": TEST_SECRET,
            "password": TEST_SECRET,
        },
        version=1,
        minor_version=2,
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await wait_until(hass, freezer, lambda: mqtt.is_connected(hass), "HA's MQTT client")
    await wait_for_birth(hass, freezer, caplog, 1)
    yield entry
    for loaded in hass.config_entries.async_loaded_entries(DOMAIN):
        assert await hass.config_entries.async_unload(loaded.entry_id)
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()


@pytest.fixture
def stand_in(broker: Mosquitto) -> Iterator[StandInAgent]:
    """A stand-in for agent farm-east publishing over the broker; its topics are cleared after."""
    agent = StandInAgent(broker.port)
    yield agent
    agent.leave()
    broker.start()  # if the test failed while it was stopped
    clear_retained(broker.port, STATUS_TOPIC, HEALTH_TOPIC)


@pytest.fixture
async def real_agent(
    hass: HomeAssistant, mqtt_entry: MockConfigEntry, agent_entry: MockConfigEntry
) -> AgentLink:
    """Agent farm-east's entry set up on HA's MQTT integration connected to the real broker."""
    assert await hass.config_entries.async_setup(agent_entry.entry_id)
    assert isinstance(agent_entry.runtime_data, AgentLink)
    return agent_entry.runtime_data


@pytest.fixture
async def real_agent_online(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    stand_in: StandInAgent,
    real_agent: AgentLink,
) -> AgentLink:
    """The stand-in agent online and healthy over the real broker, as HA shows it."""
    stand_in.status(ONLINE)
    stand_in.health(HEALTHY["health"])  # ts 2026-11-26T04:00:00.123Z
    await wait_until(
        hass, freezer, lambda: shown(hass, HEALTHY["expect"]) == HEALTHY["expect"], "healthy"
    )
    return real_agent
