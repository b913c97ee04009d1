"""The broker link: Home Assistant's own MQTT connection as a hub entity, with its uptime and alarm.

On HA's MQTT integration with a mocked client (its connection callbacks driven
by the test, the clock exact), and on the real broker, stopped and started.
"""

from __future__ import annotations

from typing import Any

import pytest
from freezegun.api import FrozenDateTimeFactory
from homeassistant.components.mqtt.models import DATA_MQTT
from homeassistant.core import HomeAssistant
from homeassistant.helpers import issue_registry as ir
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    MockMqttReasonCode,
    async_capture_events,
)
from pytest_homeassistant_custom_component.typing import MqttMockHAClient, MqttMockPahoClient

from custom_components.farm_resilience.const import DOMAIN, EVENT_OUTAGE_OVER
from tools.services import Mosquitto

from .support import advance, advance_live, reasons, restart_broker, wait_until

BROKER = "binary_sensor.farm_resilience_broker_connected"
REASON = "MQTT broker: Home Assistant disconnected for more than 60 s"


def broker_issue(hass: HomeAssistant) -> ir.IssueEntry | None:
    """Return the broker link's repair issue, if raised."""
    return ir.async_get(hass).async_get_issue(DOMAIN, "broker_disconnected")


def link(hass: HomeAssistant) -> tuple[str, dict[str, Any]]:
    """Return the broker link entity's state and attributes."""
    state = hass.states.get(BROKER)
    assert state is not None
    return state.state, dict(state.attributes)


@pytest.fixture
async def hub_on_mqtt(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    mqtt_mock: MqttMockHAClient,
    hub_entry: MockConfigEntry,
) -> MockConfigEntry:
    """The hub set up with HA's MQTT integration connected (mocked client)."""
    assert await hass.config_entries.async_setup(hub_entry.entry_id)
    await hass.async_block_till_done()
    return hub_entry


def drop(hass: HomeAssistant, client: MqttMockPahoClient) -> None:
    """Make HA's MQTT client lose its connection, as paho reports it."""
    client.on_disconnect(client, None, None, MockMqttReasonCode())
    hass.data[DATA_MQTT].client.connected = False  # the mocked client's flag does not follow


def reconnect(hass: HomeAssistant, client: MqttMockPahoClient) -> None:
    """Make HA's MQTT client connect again, as paho reports it."""
    client.on_connect(client, None, None, MockMqttReasonCode())
    hass.data[DATA_MQTT].client.connected = True


async def test_broker_link_is_an_entity_of_the_hub_only_with_the_mqtt_integration(
    hass: HomeAssistant, hub_on_mqtt: MockConfigEntry
) -> None:
    state, attributes = link(hass)

    assert state == "on"
    assert attributes["device_class"] == "connectivity"
    assert attributes["reconnects"] == 0


async def test_broker_uptime_and_reconnects_over_the_window_are_exact(
    hass: HomeAssistant,
    hub_on_mqtt: MockConfigEntry,
    mqtt_client_mock: MqttMockPahoClient,
    freezer: FrozenDateTimeFactory,
) -> None:
    await advance(hass, freezer, 600.0)
    drop(hass, mqtt_client_mock)  # lost for 120 s
    await advance(hass, freezer, 120.0)
    reconnect(hass, mqtt_client_mock)
    await advance(hass, freezer, 1080.0)
    drop(hass, mqtt_client_mock)  # lost for 50 s: under outage_alert
    await advance(hass, freezer, 50.0)
    reconnect(hass, mqtt_client_mock)
    await advance(hass, freezer, 1750.0)  # an hour in all

    state, attributes = link(hass)
    assert state == "on"
    assert attributes["uptime_pct"] == pytest.approx(100 * (1 - 170 / 3600), abs=1e-3)
    assert attributes["reconnects"] == 2


async def test_broker_lost_longer_than_outage_alert_raises_an_issue_and_degraded_until_back(
    hass: HomeAssistant,
    hub_on_mqtt: MockConfigEntry,
    mqtt_client_mock: MqttMockPahoClient,
    freezer: FrozenDateTimeFactory,
) -> None:
    over = async_capture_events(hass, EVENT_OUTAGE_OVER)
    drop(hass, mqtt_client_mock)
    await advance(hass, freezer, 59.0)
    assert link(hass)[0] == "off"
    assert broker_issue(hass) is None
    assert reasons(hass) == []

    await advance(hass, freezer, 1.0)

    issue = broker_issue(hass)
    assert issue is not None
    assert issue.translation_placeholders == {"seconds": "60"}
    assert reasons(hass) == [REASON]

    await advance(hass, freezer, 30.0)
    reconnect(hass, mqtt_client_mock)
    await hass.async_block_till_done()

    assert broker_issue(hass) is None
    assert reasons(hass) == []
    assert [event.data for event in over] == [
        {
            "device": "MQTT broker",
            "device_id": None,
            "outage": "broker_disconnected",
            "lasted_s": 90.0,
        }
    ]


async def test_a_lost_broker_alarm_stays_across_a_reload_and_ends_when_it_is_back(
    hass: HomeAssistant,
    hub_on_mqtt: MockConfigEntry,
    mqtt_client_mock: MqttMockPahoClient,
    freezer: FrozenDateTimeFactory,
) -> None:
    drop(hass, mqtt_client_mock)
    await advance(hass, freezer, 61.0)
    assert reasons(hass) == [REASON]

    assert await hass.config_entries.async_reload(hub_on_mqtt.entry_id)
    await hass.async_block_till_done()

    assert reasons(hass) == [REASON]
    assert broker_issue(hass) is not None
    reconnect(hass, mqtt_client_mock)
    await hass.async_block_till_done()
    assert broker_issue(hass) is None
    assert link(hass)[1]["reconnects"] == 1


@pytest.mark.parametrize("options", [{"outage_alert": 30}])
async def test_real_broker_stopped_past_outage_alert_alerts_and_started_again_clears(
    hass: HomeAssistant,
    mqtt_entry: MockConfigEntry,
    broker: Mosquitto,
    hub_entry: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    over = async_capture_events(hass, EVENT_OUTAGE_OVER)
    assert await hass.config_entries.async_setup(hub_entry.entry_id)
    await hass.async_block_till_done()
    assert link(hass)[0] == "on"
    await advance_live(hass, freezer, 60.0)  # connected a minute

    await hass.async_add_executor_job(broker.stop)
    try:
        await wait_until(hass, freezer, lambda: link(hass)[0] == "off", "the lost broker")
        await advance_live(hass, freezer, 30.0)
        assert broker_issue(hass) is not None
        assert reasons(hass) == ["MQTT broker: Home Assistant disconnected for more than 30 s"]
    finally:
        await hass.async_add_executor_job(broker.start)

    await restart_broker(hass, freezer, caplog, broker)  # let HA reconnect
    await wait_until(hass, freezer, lambda: link(hass)[0] == "on", "the broker back")
    await advance_live(hass, freezer, 20.0)

    assert broker_issue(hass) is None
    assert reasons(hass) == []
    attributes = link(hass)[1]
    assert attributes["reconnects"] >= 1
    assert 0 < attributes["uptime_pct"] < 100
    assert [event.data["outage"] for event in over] == ["broker_disconnected"]
    assert over[0].data["lasted_s"] >= 30.0
