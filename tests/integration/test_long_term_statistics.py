"""Long-term statistics: the figures that matter over weeks reach Home Assistant's recorder.

Home Assistant keeps 5-minute, hourly and daily means, minima and maxima of
sensors with a measurement state class; the demo dashboard's 7-day graphs show
them. Here the real recorder (in-memory SQLite) compiles a 5-minute period.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from freezegun.api import FrozenDateTimeFactory
from homeassistant.components.recorder import Recorder
from homeassistant.core import HomeAssistant
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.components.recorder.common import (
    async_wait_recording_done,
    do_adhoc_statistics,
    get_start_time,
    statistics_during_period,
)
from pytest_homeassistant_custom_component.typing import RecorderInstanceGenerator

from .sim import Behaviour, Farm
from .support import advance, call, take_down_pump_house

DASHBOARD = Path(__file__).parents[2] / "demo" / "dashboard.yaml"
# The figures that matter over weeks (docs/home-assistant.md, "Long-term statistics").
LONG_TERM = {
    "sensor.farm_resilience_command_success_rate",
    "sensor.farm_resilience_command_latency_p95",
    "sensor.farm_resilience_device_availability",
    "sensor.farm_resilience_error_budget_remaining",
}


@pytest.fixture
def mock_recorder_before_hass(async_setup_recorder_instance: RecorderInstanceGenerator) -> None:
    """Prepare the recorder's database before Home Assistant starts (the plugin's hook)."""


async def test_success_rate_latency_availability_and_error_budget_keep_long_term_statistics(
    recorder_mock: Recorder,
    hass: HomeAssistant,
    farm: Farm,
    hub_entry: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
) -> None:
    freezer.move_to(get_start_time(dt_util.utcnow()) + timedelta(minutes=5))
    period = dt_util.utcnow()
    assert await hass.config_entries.async_setup(hub_entry.entry_id)
    await hass.async_block_till_done()
    farm.default = Behaviour(delay=lambda rng: 0.5)
    for _ in range(4):
        await call(hass, "switch.toggle", entity_id="switch.pump_1")
        await advance(hass, freezer, 0.5)  # the pump switches
        await advance(hass, freezer, 29.5)
    take_down_pump_house(farm)
    await advance(hass, freezer, 60.0)
    await advance(hass, freezer, 120.0)  # past the end of the 5-minute period

    do_adhoc_statistics(hass, start=period)
    await async_wait_recording_done(hass)

    compiled = await hass.async_add_executor_job(
        statistics_during_period, hass, period, None, LONG_TERM, "5minute"
    )
    assert set(compiled) == LONG_TERM
    means = {statistic_id: rows[0]["mean"] for statistic_id, rows in compiled.items()}
    assert means["sensor.farm_resilience_command_success_rate"] == pytest.approx(100.0)
    assert 0.5 <= means["sensor.farm_resilience_command_latency_p95"] <= 0.55
    assert means["sensor.farm_resilience_error_budget_remaining"] == pytest.approx(100.0)
    assert 0 < means["sensor.farm_resilience_device_availability"] < 100


def test_the_demo_dashboard_graphs_those_figures_over_7_days() -> None:
    views = yaml.safe_load(DASHBOARD.read_text())["views"]

    def cards(within: list[dict[str, object]]) -> list[dict[str, object]]:
        found = []
        for card in within:
            found.append(card)
            found.extend(cards(card.get("cards", [])))  # type: ignore[arg-type]
        return found

    graphs = [
        card
        for view in views
        for card in cards(view["cards"])
        if card["type"] == "statistics-graph"
    ]
    graphed = {
        entity if isinstance(entity, str) else entity["entity"]
        for graph in graphs
        for entity in graph["entities"]  # type: ignore[attr-defined]
    }
    assert graphed == LONG_TERM
    assert {graph["days_to_show"] for graph in graphs} == {7}
