"""Helpers of the Home Assistant tests: the one place for what several test modules share.

- the hub's entity ids, the contract vectors and the agent's topics;
- moving the frozen clock (`advance`), saving options as a user does, adding
  Home Assistant's own helpers (groups, switch_as_x), reading command events,
  the hub's reasons, and the simulated pump house going down;
- an agent's messages through HA's MQTT integration with a mocked client
  (`publish_status`, `publish_health`) and what its entities show;
- the real broker: a stand-in agent publishing over paho, waiting for real MQTT
  traffic, restarting the broker (last will, reconnects, discovery only);
- diagnostics downloaded as a user does, kept for the session's secret scan;
- `WorkCounter`, counting the integration's own work to show how it grows.

The simulated farm (the devices) is `sim.py`, a test-only integration.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from collections.abc import Callable
from http import HTTPStatus
from pathlib import Path
from types import CodeType, TracebackType
from typing import Any

import paho.mqtt.client as paho
import pytest
from freezegun.api import FrozenDateTimeFactory
from homeassistant.components import mqtt
from homeassistant.components.mqtt.client import RECONNECT_INTERVAL_SECONDS
from homeassistant.config_entries import SOURCE_MQTT, ConfigEntry
from homeassistant.core import Event, HomeAssistant, State
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers import issue_registry as ir
from homeassistant.setup import async_setup_component
from paho.mqtt.enums import CallbackAPIVersion
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_fire_mqtt_message,
    async_fire_time_changed_exact,
)
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

import custom_components.farm_resilience as integration
from custom_components.farm_resilience.const import DEFAULT_OPTIONS, DOMAIN
from tests.contract import load_vectors
from tests.support.agent import TEST_SECRET
from tools.services import Mosquitto

from .sim import SIM_DOMAIN, Behaviour, Farm

INTEGRATION_LOGGER = "custom_components.farm_resilience"

# The hub's entities (DESIGN.md: a public contract).
RATE = "sensor.farm_resilience_command_success_rate"
FAILED = "sensor.farm_resilience_commands_failed"
UNAVAILABLE_DEVICES = "sensor.farm_resilience_unavailable_devices"
STALE = "sensor.farm_resilience_stale_sensors"
DEGRADED = "binary_sensor.farm_resilience_degraded"

# The entities of agent farm-east (docs/home-assistant.md).
AGENT_ENTITY_IDS = [
    "binary_sensor.farm_east_backend_problem",
    "binary_sensor.farm_east_connectivity",
    "sensor.farm_east_dead_letter_queue_depth",
    "sensor.farm_east_direct_latency",
    "sensor.farm_east_pooler_latency",
    "sensor.farm_east_queue_depth",
    "sensor.farm_east_relay_latency_p95",
    "sensor.farm_east_relayed_readings",
    "sensor.farm_east_route",
    "sensor.farm_east_slo_error_budget_remaining",
    "sensor.farm_east_slo_status",
    "sensor.farm_east_spool_depth",
    "sensor.farm_east_task_dead_letter_queue_depth",
    "sensor.farm_east_task_processing_p95",
    "sensor.farm_east_task_queue_depth_high",
    "sensor.farm_east_task_queue_depth_low",
    "sensor.farm_east_task_queue_depth_normal",
    "sensor.farm_east_task_success_rate",
    "sensor.farm_east_task_throughput",
    "sensor.farm_east_workers_alive",
]

# The contract vectors, shared with the agent's tests.
VECTORS = load_vectors()
AGENT_ID: str = VECTORS["agent_id"]
STATUS_TOPIC: str = VECTORS["status_topic"]
HEALTH_TOPIC: str = VECTORS["health_topic"]
ONLINE: str = VECTORS["status_payloads"]["online"]
OFFLINE: str = VECTORS["status_payloads"]["offline"]
ACCEPTED: list[dict[str, Any]] = VECTORS["accepted"]
REJECTED: list[dict[str, Any]] = VECTORS["rejected"]
HEALTHY: dict[str, Any] = ACCEPTED[0]
WITH_PROBLEMS: dict[str, Any] = ACCEPTED[1]
WITH_TASKS: dict[str, Any] = ACCEPTED[4]
# Contract vector `expect` keys that are binary sensors; the others are sensors.
BINARY_KEYS = ("connectivity", "backend_problem")
# The vector keys of the figures: every agent entity but connectivity.
FIGURES = [key for key in HEALTHY["expect"] if key not in ("connectivity", "problems")]

# The fields of the options form (the topic prefix is reconfigured, not an option there).
FORM_FIELDS = [key for key in DEFAULT_OPTIONS if key != "topic_prefix"]
# Every diagnostics download of the session, as (what, the JSON text the user gets).
DIAGNOSTICS_DOWNLOADED: list[tuple[str, str]] = []

# Real broker: frozen time moves STEP_S per round of ROUND_S real time.
STEP_S = 0.05
ROUND_S = 0.01
BIRTH_LOGGED = "MQTT client initialized, birth message sent"


# -- Time, options, helpers, events -------------------------------------------------


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


async def call(hass: HomeAssistant, action: str, **data: Any) -> None:
    """Call an action the way a dashboard or automation would (blocking)."""
    domain, service = action.split(".")
    await hass.services.async_call(domain, service, data, blocking=True)


def fixed_delay(seconds: float) -> Behaviour:
    """A device that applies every command after `seconds`."""
    return Behaviour(delay=lambda rng: seconds)


async def save_options(hass: HomeAssistant, entry: MockConfigEntry, **changes: Any) -> None:
    """Open the hub's options, change `changes` (nothing: save as they are), and submit."""
    current = {**DEFAULT_OPTIONS, **entry.options}
    result = await hass.config_entries.options.async_init(entry.entry_id)
    assert result["type"] is FlowResultType.FORM
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {**{key: current[key] for key in FORM_FIELDS}, **changes}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY, result.get("errors")
    await hass.async_block_till_done()


async def add_helper(hass: HomeAssistant, domain: str, title: str, options: dict[str, Any]) -> None:
    """Set up one of Home Assistant's own helpers as the UI creates it."""
    entry = MockConfigEntry(domain=domain, options=options, title=title)
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()


async def add_group(hass: HomeAssistant, group_type: str, name: str, members: list[str]) -> None:
    """Set up a group helper (`group_type`: light, switch...) of `members`."""
    options = {
        "group_type": group_type,
        "name": name,
        "entities": members,
        "hide_members": False,
        "all": False,
    }
    await add_helper(hass, "group", name, options)


async def add_switch_as_x(hass: HomeAssistant, switch: str, target_domain: str) -> None:
    """Set up a switch_as_x helper showing `switch` as an entity of `target_domain`."""
    options = {"entity_id": switch, "invert": False, "target_domain": target_domain}
    await add_helper(hass, "switch_as_x", f"{switch} as {target_domain}", options)


def outcomes(events: list[Event[Any]]) -> list[tuple[str, str]]:
    """Return (entity, outcome) of captured `farm_resilience_command` events."""
    return [(event.data["entity_id"], event.data["outcome"]) for event in events]


def discovered_flows(hass: HomeAssistant) -> list[dict[str, Any]]:
    """Return the integration's flows started by MQTT discovery."""
    return [
        dict(flow)
        for flow in hass.config_entries.flow.async_progress_by_handler(DOMAIN)
        if flow["context"]["source"] == SOURCE_MQTT
    ]


def reasons(hass: HomeAssistant) -> list[str]:
    """Return the hub's degraded reasons."""
    degraded = hass.states.get(DEGRADED)
    assert degraded is not None
    return list(degraded.attributes["reasons"])


async def a_morning_on_the_farm(
    hass: HomeAssistant, farm: Farm, freezer: FrozenDateTimeFactory
) -> None:
    """Pump 1 switches on in 1.25 s, pump 2 drops its command, the greenhouse is gone a minute."""
    farm.default = Behaviour(delay=lambda rng: 1.25)
    farm.behaviour["switch.pump_2"] = Behaviour(drop_probability=1.0)
    for pump in ("switch.pump_1", "switch.pump_2"):
        await hass.services.async_call("switch", "turn_on", {"entity_id": pump}, blocking=True)
    farm.entities["cover.vent"].set_available(False)
    farm.entities["light.grow_light"].set_available(False)
    await advance(hass, freezer, 1.25)
    await advance(hass, freezer, 60.0)


def pump_house_issue(hass: HomeAssistant) -> ir.IssueEntry | None:
    """Return the repair issue of the simulated farm's pump house, if raised."""
    device = dr.async_get(hass).async_get_device(identifiers={(SIM_DOMAIN, "Pump house")})
    assert device is not None
    return ir.async_get(hass).async_get_issue(DOMAIN, f"device_down_{device.id}")


def take_down_pump_house(farm: Farm, available: bool = False) -> None:
    """Make both pumps of the pump house unavailable (or available again)."""
    farm.entities["switch.pump_1"].set_available(available)
    farm.entities["switch.pump_2"].set_available(available)


# -- An agent through HA's MQTT integration (mocked client) ------------------------


def publish_status(hass: HomeAssistant, payload: str, *, replayed: bool = False) -> None:
    """Deliver a status payload: live, or `replayed` from the broker's retained store."""
    async_fire_mqtt_message(hass, STATUS_TOPIC, payload, qos=1, retain=replayed)


def publish_health(
    hass: HomeAssistant, health: dict[str, Any] | str | bytes, *, replayed: bool = False
) -> None:
    """Deliver a health payload (a dict as JSON): live, or `replayed` (retained)."""
    payload = json.dumps(health) if isinstance(health, dict) else health
    async_fire_mqtt_message(hass, HEALTH_TOPIC, payload, qos=1, retain=replayed)


def entity_id(hass: HomeAssistant, key: str, agent_id: str = AGENT_ID) -> str:
    """Return the entity id of an agent entity by its vector `expect` key."""
    platform = "binary_sensor" if key in BINARY_KEYS else "sensor"
    found = er.async_get(hass).async_get_entity_id(platform, DOMAIN, f"agent_{agent_id}_{key}")
    assert found is not None, f"no {platform} for {key}"
    return found


def state(hass: HomeAssistant, key: str, agent_id: str = AGENT_ID) -> State:
    """Return the state of an agent entity by its vector `expect` key."""
    found = hass.states.get(entity_id(hass, key, agent_id))
    assert found is not None
    return found


def shown(hass: HomeAssistant, expect: dict[str, Any], agent_id: str = AGENT_ID) -> dict[str, Any]:
    """Return what the agent's entities show, in the shape of a vector's `expect`."""
    values: dict[str, Any] = {}
    for key, expected in expect.items():
        if key == "problems":
            values[key] = state(hass, "backend_problem", agent_id).attributes.get("problems")
            continue
        value = state(hass, key, agent_id).state
        if isinstance(expected, int | float) and value not in ("unknown", "unavailable"):
            values[key] = float(value) if isinstance(expected, float) else int(value)
        else:
            values[key] = value
    return values


def unavailable_figures(hass: HomeAssistant) -> list[str]:
    """Return the figure entities (all but connectivity) that are unavailable."""
    return [key for key in FIGURES if state(hass, key).state == "unavailable"]


# -- Logs -----------------------------------------------------------------------------


def take_integration_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Return the integration's warnings and remove them from the log (they were expected)."""
    taken = [
        record
        for record in caplog.records
        if record.name.startswith(INTEGRATION_LOGGER) and record.levelno >= logging.WARNING
    ]
    caplog.records[:] = [record for record in caplog.records if record not in taken]
    return [record.getMessage() for record in taken]


def errors_logged(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Return every error or exception anyone logged."""
    return [
        f"{record.name}: {record.getMessage()}"
        for record in caplog.records
        if record.levelno >= logging.ERROR or record.exc_info
    ]


# -- The real broker ------------------------------------------------------------------


class StandInAgent:
    """Publishes what an agent publishes (retained, QoS 1), with its last will, over paho."""

    started = 0

    def __init__(self, port: int, agent_id: str = AGENT_ID, prefix: str = "farm_resilience"):
        """Connect with the agent's last will (`offline`, retained) and wait for the broker."""
        self.status_topic = f"{prefix}/agent/{agent_id}/status"
        self.health_topic = f"{prefix}/agent/{agent_id}/health"
        # A client id of its own: a second stand-in must not take over the first one's session.
        StandInAgent.started += 1
        client_id = f"stand-in-{agent_id}-{StandInAgent.started}"
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id)
        self.client.will_set(self.status_topic, OFFLINE, qos=1, retain=True)
        connected = threading.Event()
        self.client.on_connect = lambda *args: connected.set()
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert connected.wait(10), "the stand-in agent could not connect"
        self.alive = True

    def publish(self, topic: str, payload: str, *, retain: bool = True) -> None:
        """Publish and wait for the broker's PUBACK."""
        self.client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(10)

    def status(self, payload: str, *, retain: bool = True) -> None:
        """Publish a status payload (`online`, `offline`, or anything)."""
        self.publish(self.status_topic, payload, retain=retain)

    def health(self, health: dict[str, Any] | str, *, retain: bool = True) -> None:
        """Publish a health payload: a dict as JSON, a string as it is."""
        payload = health if isinstance(health, str) else json.dumps(health)
        self.publish(self.health_topic, payload, retain=retain)

    def die(self) -> None:
        """Drop the connection without DISCONNECT, as a killed process does: the will fires."""
        self.client.loop_stop()
        socket = self.client.socket()
        assert socket is not None
        socket.close()
        self.alive = False

    def leave(self) -> None:
        """Disconnect cleanly (no will), leaving the retained topics as they are."""
        if self.alive:
            self.client.disconnect()
            self.client.loop_stop()
            self.alive = False


def clear_retained(port: int, *topics: str) -> None:
    """Remove retained messages a test left on the shared broker."""
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id="retained-cleaner")
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        for topic in topics:
            client.publish(topic, b"", qos=1, retain=True).wait_for_publish(10)
    finally:
        client.disconnect()
        client.loop_stop()


async def wait_until(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    condition: Callable[[], bool],
    what: str,
    timeout_s: float = 10.0,
    step_s: float = STEP_S,
) -> None:
    """Let real MQTT traffic arrive until `condition` holds; frozen time moves `step_s` a round.

    Home Assistant's MQTT client debounces subscriptions and reconnects with
    timers; under a frozen clock those only run when time moves. Each round sleeps
    10 ms of real time in the executor, so the timeout counts rounds, not the clock.
    """
    for _ in range(int(timeout_s / ROUND_S)):
        await hass.async_block_till_done()
        if condition():
            return
        freezer.tick(step_s)
        async_fire_time_changed_exact(hass)
        await hass.async_add_executor_job(time.sleep, ROUND_S)
    raise AssertionError(f"timed out waiting for {what}")


async def advance_live(
    hass: HomeAssistant, freezer: FrozenDateTimeFactory, seconds: float, step_s: float = 20.0
) -> None:
    """Move frozen time forward with the broker connected, running what falls due.

    In steps shorter than HA's MQTT keepalive (60 s), each followed by a moment of
    real time: a jump past the keepalive with no PINGRESP read in between makes
    paho drop the connection.
    """
    remaining = seconds
    while remaining > 0:
        step = min(step_s, remaining)
        remaining -= step
        await advance(hass, freezer, step)
        await settle(hass, rounds=2)


async def settle(hass: HomeAssistant, rounds: int = 20) -> None:
    """Give in-flight messages real time to arrive without moving the clock (no news expected)."""
    for _ in range(rounds):
        await hass.async_add_executor_job(time.sleep, ROUND_S)
        await hass.async_block_till_done()


def births(caplog: pytest.LogCaptureFixture) -> int:
    """Return how often HA's MQTT client finished connecting (it logs its birth message)."""
    return sum(1 for record in caplog.records if record.getMessage() == BIRTH_LOGGED)


async def wait_for_birth(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    caplog: pytest.LogCaptureFixture,
    count: int,
) -> None:
    """Wait until HA's MQTT client has sent its birth message `count` times.

    The client sends it 5 s (DISCOVERY_COOLDOWN) after connecting; a broker going
    away before that makes HA core log "Task exception was never retrieved".
    """
    await wait_until(
        hass, freezer, lambda: births(caplog) >= count, "HA's MQTT birth message", step_s=0.5
    )


async def restart_broker(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    caplog: pytest.LogCaptureFixture,
    broker: Mosquitto,
    while_ha_is_away: Callable[[], None] | None = None,
) -> None:
    """Restart the broker gracefully (it keeps retained messages) and let HA reconnect.

    `while_ha_is_away` runs once the broker is back but before HA reconnects: what
    it publishes, HA only gets as a retained replay.
    """
    await hass.async_add_executor_job(broker.stop)
    await wait_until(hass, freezer, lambda: not mqtt.is_connected(hass), "HA to lose the broker")
    await settle(hass)  # HA's first, immediate reconnect fails; the next one waits for the clock
    await hass.async_add_executor_job(broker.start)
    if while_ha_is_away is not None:
        await hass.async_add_executor_job(while_ha_is_away)
    born = births(caplog)
    freezer.tick(RECONNECT_INTERVAL_SECONDS)
    async_fire_time_changed_exact(hass)
    await wait_until(hass, freezer, lambda: mqtt.is_connected(hass), "HA to reconnect")
    await wait_for_birth(hass, freezer, caplog, born + 1)


# -- Diagnostics ----------------------------------------------------------------------


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


# -- Counting the integration's own work ----------------------------------------------

PACKAGE = str(Path(integration.__file__).parent) + "/"
# A tool id that Python leaves free (0-2 and 5 are the debugger, coverage, profiler, optimizer).
TOOL_ID = 4
monitoring = sys.monitoring


class WorkCounter:
    """Counts the integration's executed lines and jumps while active (`with counter: ...`).

    Through `sys.monitoring` (PEP 669): every line the integration's code executes
    plus every jump (each loop iteration is one), and nothing of Home Assistant's.
    A scan over all tracked entities therefore shows as at least one step per
    entity, whatever the machine's speed: never a clock, only steps.
    """

    def __init__(self) -> None:
        """Start at zero, not counting."""
        self.steps = 0
        self._mine: dict[CodeType, bool] = {}
        self.by_code: dict[str, int] = {}

    def _step(self, code: CodeType, *_: int) -> Any:
        """Count a step of the integration; switch the event off for anyone else's code."""
        mine = self._mine.get(code)
        if mine is None:
            mine = self._mine[code] = code.co_filename.startswith(PACKAGE)
        if not mine:
            return monitoring.DISABLE
        self.steps += 1
        key = f"{code.co_filename.rsplit('/', 1)[-1]}:{code.co_qualname}"
        self.by_code[key] = self.by_code.get(key, 0) + 1
        return None

    def top(self, count: int = 8) -> list[tuple[str, int]]:
        """Return where most of the work went: (file:function, steps), most first."""
        return sorted(self.by_code.items(), key=lambda item: -item[1])[:count]

    def __enter__(self) -> WorkCounter:
        """Start counting."""
        monitoring.use_tool_id(TOOL_ID, "farm_resilience work counter")
        events = monitoring.events.LINE | monitoring.events.JUMP
        monitoring.register_callback(TOOL_ID, monitoring.events.LINE, self._step)
        monitoring.register_callback(TOOL_ID, monitoring.events.JUMP, self._step)
        monitoring.set_events(TOOL_ID, events)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Stop counting and give the tool id back."""
        monitoring.set_events(TOOL_ID, 0)
        monitoring.free_tool_id(TOOL_ID)
        # Events switched off for other code stay off for this tool id otherwise.
        monitoring.restart_events()
