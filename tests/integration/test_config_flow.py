"""Config, options and reconfigure flows, with every error they can show."""

from __future__ import annotations

from typing import Any

import pytest
from homeassistant.config_entries import SOURCE_USER
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.farm_resilience.const import DEFAULT_OPTIONS, DOMAIN

from .sim import Farm

THRESHOLDS = {
    "command_timeout": 5.0,
    "success_target": 99.0,
    "latency_target": 5.0,
    "outage_alert": 60.0,
    "stale_after": 900.0,
    "window_hours": 24.0,
    "min_samples": 20.0,
}


async def test_user_flow_creates_the_hub_with_default_options(
    hass: HomeAssistant, farm: Farm
) -> None:
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {}

    result = await hass.config_entries.flow.async_configure(
        result["flow_id"],
        {"topic_prefix": "farm/east", "tracked_entities": ["switch.pump_1"]},
    )

    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == "Farm Resilience"
    assert result["data"] == {}
    assert result["options"] == {
        **DEFAULT_OPTIONS,
        "topic_prefix": "farm/east",
        "tracked_entities": ["switch.pump_1"],
        "monitored_sensors": [],
    }
    entry = result["result"]
    assert entry.unique_id == "hub"
    assert hass.states.get("sensor.farm_resilience_command_success_rate") is not None


async def test_a_second_hub_is_impossible_the_user_flow_adds_an_agent_instead(
    hass: HomeAssistant, hub_entry: MockConfigEntry
) -> None:
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})

    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "agent"
    assert [str(key) for key in result["data_schema"].schema] == ["agent_id", "topic_prefix"]


@pytest.mark.parametrize(
    ("user_input", "errors"),
    [
        ({"topic_prefix": "farm/#"}, {"topic_prefix": "invalid_topic_prefix"}),
        ({"topic_prefix": "farm/+/x"}, {"topic_prefix": "invalid_topic_prefix"}),
        ({"topic_prefix": "/farm"}, {"topic_prefix": "invalid_topic_prefix"}),
        ({"topic_prefix": "farm//east"}, {"topic_prefix": "invalid_topic_prefix"}),
        ({"topic_prefix": "farm east"}, {"topic_prefix": "invalid_topic_prefix"}),
        (
            {"topic_prefix": "farm", "tracked_entities": ["switch.pumpp_1"]},
            {"tracked_entities": "unknown_entity"},
        ),
        (
            {"topic_prefix": "farm", "monitored_sensors": ["sensor.gone"]},
            {"monitored_sensors": "unknown_entity"},
        ),
    ],
)
async def test_user_flow_shows_translated_errors_and_recovers(
    hass: HomeAssistant, farm: Farm, user_input: dict[str, Any], errors: dict[str, str]
) -> None:
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})

    result = await hass.config_entries.flow.async_configure(result["flow_id"], user_input)

    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == errors
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"topic_prefix": "farm_resilience"}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY


async def test_options_flow_changes_options_and_reloads_the_hub(
    hass: HomeAssistant, hub: MockConfigEntry
) -> None:
    result = await hass.config_entries.options.async_init(hub.entry_id)
    assert result["type"] is FlowResultType.FORM

    result = await hass.config_entries.options.async_configure(
        result["flow_id"],
        {
            "tracked_entities": ["valve.field_1"],
            "monitored_sensors": [],
            **THRESHOLDS,
            "command_timeout": 30.0,
            "min_samples": 50.0,
        },
    )
    await hass.async_block_till_done()

    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert hub.options["command_timeout"] == 30.0
    assert hub.options["min_samples"] == 50
    assert hub.options["topic_prefix"] == "farm_resilience"
    assert hub.runtime_data.options.command_timeout == 30.0
    assert hub.runtime_data.tracker.followed == {"valve.field_1"}


@pytest.mark.parametrize(
    ("changes", "errors"),
    [
        ({"command_timeout": 0.1}, {"command_timeout": "invalid_command_timeout"}),
        ({"success_target": 100.5}, {"success_target": "invalid_success_target"}),
        ({"latency_target": 0.0}, {"latency_target": "invalid_latency_target"}),
        ({"latency_target": 6.0}, {"latency_target": "latency_above_timeout"}),
        ({"outage_alert": 1.0}, {"outage_alert": "invalid_outage_alert"}),
        ({"stale_after": 5.0}, {"stale_after": "invalid_stale_after"}),
        ({"window_hours": 200.0}, {"window_hours": "invalid_window_hours"}),
        ({"min_samples": 0.0}, {"min_samples": "invalid_min_samples"}),
        ({"tracked_entities": ["light.nowhere"]}, {"tracked_entities": "unknown_entity"}),
    ],
)
async def test_options_flow_shows_translated_errors(
    hass: HomeAssistant,
    hub: MockConfigEntry,
    changes: dict[str, Any],
    errors: dict[str, str],
) -> None:
    result = await hass.config_entries.options.async_init(hub.entry_id)

    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {**THRESHOLDS, **changes}
    )

    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == errors


async def test_reconfigure_changes_the_topic_prefix(
    hass: HomeAssistant, hub: MockConfigEntry
) -> None:
    result = await hub.start_reconfigure_flow(hass)
    assert result["type"] is FlowResultType.FORM

    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"topic_prefix": "farm/#"}
    )
    assert result["errors"] == {"topic_prefix": "invalid_topic_prefix"}

    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"topic_prefix": "farm/east"}
    )
    await hass.async_block_till_done()

    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reconfigure_successful"
    assert hub.options["topic_prefix"] == "farm/east"
    assert hub.options["command_timeout"] == DEFAULT_OPTIONS["command_timeout"]
    assert hub.runtime_data.options.topic_prefix == "farm/east"
