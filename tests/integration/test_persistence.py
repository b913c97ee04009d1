"""The window's statistics survive an unload/reload and a stop/start; bad storage is no trap."""

from __future__ import annotations

import logging
import time
from typing import Any

import pytest
from freezegun.api import FrozenDateTimeFactory
from homeassistant import loader
from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import Event, HomeAssistant
from homeassistant.helpers import issue_registry as ir
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_test_home_assistant,
)

from custom_components.farm_resilience.const import DOMAIN, STORAGE_KEY
from custom_components.farm_resilience.statistics import (
    HISTOGRAM_BINS,
    HISTOGRAM_RATIO,
    latency_bin,
)
from custom_components.farm_resilience.storage import STORAGE_MINOR_VERSION

from .sim import Behaviour, Farm
from .support import RATE, advance, call

P50 = "sensor.farm_resilience_command_latency_p50"


async def one_success_one_timeout(
    hass: HomeAssistant, farm: Farm, freezer: FrozenDateTimeFactory
) -> None:
    """Leave one success and one timeout in the window."""
    await call(hass, "switch.turn_on", entity_id="switch.pump_1")
    farm.behaviour["switch.pump_2"] = Behaviour(drop_probability=1.0)
    await call(hass, "switch.turn_on", entity_id="switch.pump_2")
    await advance(hass, freezer, 6.0)
    assert hass.states.get(RATE).state == "50.0"


async def test_statistics_survive_unload_and_reload(
    hass: HomeAssistant, farm: Farm, hub: MockConfigEntry, freezer: FrozenDateTimeFactory
) -> None:
    await one_success_one_timeout(hass, farm, freezer)

    assert await hass.config_entries.async_reload(hub.entry_id)
    await hass.async_block_till_done()

    assert hass.states.get(RATE).state == "50.0"
    assert hass.states.get(RATE).attributes["commands"] == 2


async def test_statistics_survive_stop_and_start_and_pending_commands_are_dropped(
    hass: HomeAssistant,
    command_events: list[Event[Any]],
    farm: Farm,
    hub: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
    hass_storage: dict[str, Any],
) -> None:
    await one_success_one_timeout(hass, farm, freezer)
    assert len(command_events) == 2
    await call(hass, "switch.turn_on", entity_id="switch.pump_2")
    assert hub.runtime_data.tracker.pending

    await hass.async_stop()

    assert len(command_events) == 2  # the pending command got no outcome: it was dropped
    stored = hass_storage[STORAGE_KEY]["data"]
    assert sum(bucket["counts"]["success"] for bucket in stored["buckets"]) == 1
    assert sum(bucket["counts"]["timeout"] for bucket in stored["buckets"]) == 1

    async with async_test_home_assistant() as restarted:
        restarted.data.pop(loader.DATA_CUSTOM_COMPONENTS)
        entry = MockConfigEntry(domain=DOMAIN, data={}, options=dict(hub.options))
        entry.add_to_hass(restarted)
        assert await restarted.config_entries.async_setup(entry.entry_id)
        await restarted.async_block_till_done()

        assert restarted.states.get(RATE).state == "50.0"
        assert restarted.states.get(RATE).attributes["commands"] == 2
        await restarted.async_stop()


async def test_statistics_are_saved_within_a_minute_under_steady_traffic(
    hass: HomeAssistant,
    farm: Farm,
    hub: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
    hass_storage: dict[str, Any],
) -> None:
    for _ in range(4):  # a command every 20 s: a debounced save would never happen
        await call(hass, "switch.toggle", entity_id="switch.pump_1")
        await advance(hass, freezer, 20.0)

    stored = hass_storage[STORAGE_KEY]["data"]
    assert sum(bucket["counts"]["success"] for bucket in stored["buckets"]) == 3


def stored(data: Any, minor_version: int = 1, version: int = 1) -> dict[str, Any]:
    """Return a storage file of the hub as Home Assistant keeps it."""
    return {"version": version, "minor_version": minor_version, "key": STORAGE_KEY, "data": data}


BUCKET = {"start": 1_796_000_000.0, "counts": {"success": 3, "timeout": 1}, "latency_bins": {}}
UNREADABLE = {
    "bucket_without_counts": stored({"buckets": [{"start": 1_796_000_000.0}]}),
    "span_with_one_number": stored(
        {"buckets": [BUCKET], "entity_spans": [{"start": 1.0, "entities": {"switch.pump_1": [3]}}]}
    ),
    "histogram_bin_out_of_range": stored(
        {"buckets": [{**BUCKET, "latency_bins": {"265": 1}}], "entity_spans": []}
    ),
    "list_instead_of_object": stored([BUCKET]),
    "bucket_start_not_a_number": stored({"buckets": [{**BUCKET, "start": "yesterday"}]}),
    "negative_count": stored({"buckets": [{**BUCKET, "counts": {"success": -1}}]}),
    "newer_major_version": stored({"buckets": [BUCKET]}, version=2),
    "no_data_key": {"version": 1, "minor_version": 1, "key": STORAGE_KEY},
    "burn_minute_with_more_failed_than_sent": stored({"burn": [[29933000, 1, 2]]}, 3),
    "rhythm_interval_not_a_number": stored({"rhythms": {"sensor.soil": [10.0, "ten"]}}, 3),
    "uptime_bucket_too_short": stored({"uptime": {"buckets": [[1_796_000_000.0, 60.0]]}}, 3),
    "uptime_spell_of_negative_length": stored(
        {
            "uptime": {
                "devices": {
                    "switch.pump": {"name": "Pump", "first_seen": 1.0, "spells": [[5.0, -3.0]]}
                }
            }
        },
        3,
    ),
}


@pytest.mark.parametrize("contents", UNREADABLE.values(), ids=UNREADABLE.keys())
async def test_unreadable_stored_statistics_start_fresh_with_a_repair_issue_that_says_so(
    hass: HomeAssistant,
    farm: Farm,
    hub_entry: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
    hass_storage: dict[str, Any],
    caplog: pytest.LogCaptureFixture,
    contents: dict[str, Any],
) -> None:
    hass_storage[STORAGE_KEY] = contents

    assert await hass.config_entries.async_setup(hub_entry.entry_id)
    await hass.async_block_till_done()

    assert hub_entry.state is ConfigEntryState.LOADED
    assert hass.states.get(RATE).state == "unknown"
    issue = ir.async_get(hass).async_get_issue(DOMAIN, "storage_unreadable")
    assert issue is not None
    assert issue.translation_key == "storage_unreadable"
    assert issue.translation_placeholders["path"].endswith(STORAGE_KEY)
    assert issue.translation_placeholders["error"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert any("could not be read" in message for message in warnings), warnings
    caplog.clear()  # the warning is expected here

    await one_success_one_timeout(hass, farm, freezer)
    assert await hass.config_entries.async_reload(hub_entry.entry_id)
    await hass.async_block_till_done()
    assert hass_storage[STORAGE_KEY]["minor_version"] == STORAGE_MINOR_VERSION
    assert hass.states.get(RATE).state == "50.0"  # the fresh window was saved and read back


async def test_statistics_of_version_1_1_are_read_and_migrated(
    hass: HomeAssistant,
    farm: Farm,
    hub_entry: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
    hass_storage: dict[str, Any],
) -> None:
    now = time.time()
    one_second = str(latency_bin(1.0))  # version 1.1 had the same layout as today
    bucket = {**BUCKET, "start": now - now % 300, "latency_bins": {one_second: 3}}
    hass_storage[STORAGE_KEY] = stored({"buckets": [bucket], "entity_spans": []})

    assert await hass.config_entries.async_setup(hub_entry.entry_id)
    await hass.async_block_till_done()

    assert hass.states.get(RATE).state == "75.0"
    assert float(hass.states.get(P50).state) == pytest.approx(1.0, rel=HISTOGRAM_RATIO - 1)
    assert hass_storage[STORAGE_KEY]["minor_version"] == STORAGE_MINOR_VERSION
    assert hass_storage[STORAGE_KEY]["data"]["histogram"]["bins"] == HISTOGRAM_BINS


async def test_latencies_counted_in_another_histogram_layout_are_moved_to_this_one(
    hass: HomeAssistant,
    farm: Farm,
    hub_entry: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
    hass_storage: dict[str, Any],
) -> None:
    now = time.time()
    # A coarser layout than today's: bins 10 % wide from 20 ms; bin 50 holds 2.2-2.4 s.
    layout = {"min_s": 0.02, "ratio": 1.1, "bins": 60}
    middle = 0.02 * 1.1**49.5
    bucket = {**BUCKET, "start": now - now % 300, "latency_bins": {"50": 3}}
    hass_storage[STORAGE_KEY] = stored(
        {"buckets": [bucket], "entity_spans": [], "histogram": layout}, minor_version=2
    )

    assert await hass.config_entries.async_setup(hub_entry.entry_id)
    await hass.async_block_till_done()

    assert float(hass.states.get(P50).state) == pytest.approx(middle, rel=0.1)
