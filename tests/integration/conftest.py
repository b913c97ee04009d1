"""Fixtures for the Home Assistant tests: a simulated farm, the hub entry, moving time, MQTT."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Iterator
from http import HTTPStatus
from pathlib import Path
from typing import Any

# Imported before any test freezes time: its dataclasses cannot be built under freezegun.
import homeassistant.components.mqtt.config_flow  # noqa: F401
import pytest
from freezegun.api import FrozenDateTimeFactory
from homeassistant.components import mqtt
from homeassistant.config_entries import ConfigEntry
from homeassistant.core import HomeAssistant
from homeassistant.setup import async_setup_component
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_fire_time_changed_exact,
)
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.farm_resilience.const import DEFAULT_OPTIONS, DOMAIN, HUB_NAME
from tests.support.agent import TEST_SECRET
from tools.services import Mosquitto

from .mqtt_support import (
    AGENT_ID,
    HEALTH_TOPIC,
    STATUS_TOPIC,
    StandInAgent,
    clear_retained,
    wait_for_birth,
    wait_until,
)
from .sim import LAYOUT, Farm, Layout, async_setup_farm

INTEGRATION_LOGGER = "custom_components.farm_resilience"
# Every diagnostics download of the session, as (what, the JSON text the user gets).
DIAGNOSTICS_DOWNLOADED: list[tuple[str, str]] = []


@pytest.fixture(scope="session", autouse=True)
def no_secret_in_any_diagnostics_download() -> Iterator[None]:
    """After the session: no diagnostics download shows the suite's test secret."""
    yield
    leaks = [what for what, text in DIAGNOSTICS_DOWNLOADED if TEST_SECRET in text]
    if leaks:
        pytest.fail(f"a test secret was shown in the diagnostics of: {', '.join(leaks)}")


async def download_diagnostics(
    hass: HomeAssistant, hass_client: ClientSessionGenerator, entry: ConfigEntry
) -> dict[str, Any]:
    """Download an entry's diagnostics as a user does (HA's API); return its `data`.

    Every download is kept for the session's secret scan, whole: HA's envelope too.
    """
    assert await async_setup_component(hass, "diagnostics", {})
    client = await hass_client()
    response = await client.get(f"/api/diagnostics/config_entry/{entry.entry_id}")
    assert response.status == HTTPStatus.OK
    text = await response.text()
    DIAGNOSTICS_DOWNLOADED.append((f"{entry.domain} entry {entry.title!r}", text))
    assert TEST_SECRET not in text
    data: dict[str, Any] = json.loads(text)["data"]
    return data


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
async def hub(hass: HomeAssistant, farm: Farm, hub_entry: MockConfigEntry) -> MockConfigEntry:
    """The hub set up on top of the simulated farm."""
    assert await hass.config_entries.async_setup(hub_entry.entry_id)
    await hass.async_block_till_done()
    return hub_entry


async def advance(hass: HomeAssistant, freezer: FrozenDateTimeFactory, seconds: float) -> None:
    """Move time forward and run whatever became due.

    State changes are dispatched to followers one loop iteration late, so they are
    settled first; timers that fall due while due timers run are fired too.
    """
    await hass.async_block_till_done()
    freezer.tick(seconds)
    async_fire_time_changed_exact(hass)
    await hass.async_block_till_done()
    async_fire_time_changed_exact(hass)
    await hass.async_block_till_done()


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
def stand_in(broker: Mosquitto) -> Iterator[StandInAgent]:
    """A stand-in for agent farm-east publishing over the broker; its topics are cleared after."""
    agent = StandInAgent(broker.port)
    yield agent
    agent.leave()
    broker.start()  # if the test failed while it was stopped
    clear_retained(broker.port, STATUS_TOPIC, HEALTH_TOPIC)
