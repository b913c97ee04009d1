"""Everything `make demo` runs, started and stopped as one: also used by the dashboard test.

Throwaway Mosquitto, PostgreSQL+PGMQ and PgBouncer; the agent; its task worker
(`farm-agent work`, storing the relayed readings and publishing notifications); the
simulated farm (sensors, actuators and frost alerts); a real Home Assistant with MQTT,
the Farm Resilience hub and the discovered agent set up through its own flows, and the
demo's automations sending commands.
"""

from __future__ import annotations

import contextlib
import math
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tools.agent_process import AgentProcess
from tools.farm_devices import FARM_ACTUATORS, FarmDevices, sensor_object_id
from tools.farm_simulator import FarmSimulator, farm_sensors
from tools.frost_alerts import FrostAlerts
from tools.home_assistant import (
    DASHBOARD_PATH,
    DEMO_DIR,
    HomeAssistantClient,
    HomeAssistantError,
    HomeAssistantProcess,
    Login,
    pick_port,
    require_frontend,
    write_config,
)
from tools.services import Services, free_port, set_up_agent_role

AGENT_ID = "farm-east"
SENSORS = 20
HUB = "sensor.farm_resilience_"
AGENT = "sensor.farm_east_"
AUTOMATIONS = DEMO_DIR / "automations.yaml"
# Turns the worker's frost notifications into Home Assistant notifications.
FROST_AUTOMATION = "demo_frost_alert"
AGENT_READY_S = 60
# Counted by the worker on its /metrics (labels as the page orders them, by name):
# readings stored, notifications published.
STORED = 'outcome="succeeded",type="sensor_reading"'
NOTIFIED = 'outcome="succeeded",type="send_notification"'


def metric(page: str, name: str, labels: str = "") -> float:
    """One sample of the agent's /metrics page; 0 when absent."""
    wanted = f"{name}{{{labels}}}" if labels else name
    for line in page.splitlines():
        if line.startswith(wanted + " "):
            return float(line.split()[-1])
    return 0.0


def _number(state: dict[str, Any] | None) -> float | None:
    """A state as a number; None when unknown, unavailable or missing."""
    try:
        value = float(state["state"]) if state else math.nan
    except ValueError:
        return None
    return None if math.isnan(value) else value


def _last_triggered(states: dict[str, dict[str, Any]], automation_id: str) -> str | None:
    """When the automation with this id last ran its actions; None if never (or missing)."""
    for entity_id, state in states.items():
        attributes = state.get("attributes", {})
        if entity_id.startswith("automation.") and attributes.get("id") == automation_id:
            return attributes.get("last_triggered")
    return None


@dataclass(frozen=True, slots=True)
class Figures:
    """What the demo shows: Home Assistant's figures, the agent's and the simulation's."""

    commands: int | None
    success_rate: float | None
    latency_p50: float | None
    latency_p95: float | None
    failed: float | None
    degraded: bool
    reasons: list[str]
    agent_online: bool
    route: str | None
    relayed_in_ha: float | None
    agent_problems: list[str]
    received: float
    relayed: float
    spooled: float
    dead_lettered: float
    stored: float
    notified: float
    frost_alerts: int
    # When Home Assistant's frost automation last turned an alert into a notification.
    frost_shown_at: str | None
    device_commands: int
    device_ignored: int


class DemoStack:
    """Start with `start()`, always `close()`: nothing is left running or on disk."""

    def __init__(
        self,
        port: int | None = None,
        progress: Callable[[str], None] = print,
        ignore_ratio: float = 0.03,
    ) -> None:
        require_frontend()  # before anything is created that would need cleaning up
        self.progress = progress
        self.folder = Path(tempfile.mkdtemp(prefix="farm-demo-"))
        self.login = Login.generate()
        self.services = Services()
        self.port = port if port is not None else pick_port()
        self.home_assistant = HomeAssistantProcess(self.folder / "home-assistant", self.port)
        self.client = HomeAssistantClient(self.port)
        self.sensors = farm_sensors(SENSORS)
        self.ignore_ratio = ignore_ratio
        self.agent: AgentProcess | None = None
        self.agent_http = free_port()
        self.worker_http = free_port()
        self.simulator: FarmSimulator | None = None
        self.devices: FarmDevices | None = None
        self.worker: AgentProcess | None = None
        self.frost: FrostAlerts | None = None
        self.agent_exit_code: int | None = None
        self.worker_exit_code: int | None = None

    @property
    def dashboard_url(self) -> str:
        return f"{self.home_assistant.url}/{DASHBOARD_PATH}/farm"

    def start(self) -> None:
        # Home Assistant boots while PostgreSQL initialises: the two slowest parts overlap.
        write_config(self.home_assistant.folder, self.port)
        self.home_assistant.start()
        self.progress("Starting throwaway Mosquitto, PostgreSQL+PGMQ and PgBouncer ...")
        broker = self.services.mosquitto()
        self._start_agent(broker.port)
        self.frost = FrostAlerts(self.services.postgres.dsn)
        self.frost.start()
        self.simulator = FarmSimulator("127.0.0.1", broker.port, self.sensors)
        self.simulator.start()
        self.devices = FarmDevices(
            "127.0.0.1", broker.port, sensors=self.sensors, ignore_ratio=self.ignore_ratio
        )
        self.devices.start()
        self.progress(
            f"Agent {AGENT_ID} and a farm of {SENSORS} sensors"
            f" and {len(FARM_ACTUATORS)} actuators running"
        )
        self.progress(f"Starting Home Assistant on {self.home_assistant.url} ...")
        self.home_assistant.wait_ready()
        self.client.onboard(self.login)
        self._set_up_home_assistant(broker.port)

    def _start_agent(self, broker_port: int) -> None:
        # As on Supabase (docs/supabase.md): the owner applies the migrations, and the
        # agent logs in with a role of its own in farm_agent, which may change no schema.
        postgres = self.services.postgres
        login = set_up_agent_role(postgres)
        config = {
            "agent_id": AGENT_ID,
            # The Farm Resilience integration shows the agent: no second device via discovery.
            "mqtt": {
                "host": "127.0.0.1",
                "port": broker_port,
                "topics": ["farm/#"],
                "discovery_prefix": None,
            },
            "backend": {
                "pooler_dsn": self.services.pgbouncer.dsn_for(postgres.database, login),
                "direct_dsn": postgres.dsn_for(postgres.database, login),
                "manage_schema": False,
            },
            "spool": {"path": str(self.folder / "spool.db")},
            "probes": {"interval_s": 5},
            "http": {"listen": f"127.0.0.1:{self.agent_http}"},
            # The worker: the relayed readings are tasks of type sensor_reading, stored by
            # the built-in store_readings; send_notification tasks go out over MQTT.
            "tasks": {
                "sources": [{"queue": "sensor_readings", "type": "sensor_reading"}],
                "listen": f"127.0.0.1:{self.worker_http}",
            },
        }
        path = self.folder / "agent.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        # Sessions of their own: Ctrl-C reaches the demo only, and the demo stops them.
        self.agent = AgentProcess(path, log_path=self.folder / "agent.log", own_session=True)
        self.agent.start()
        self.agent.wait_ready(AGENT_READY_S)
        self.worker = AgentProcess(
            path, command="work", log_path=self.folder / "worker.log", own_session=True
        )
        self.worker.start()
        self.worker.wait_ready(AGENT_READY_S)

    def _set_up_home_assistant(self, broker_port: int) -> None:
        """MQTT, the hub and the discovered agent, through the same flows a person uses."""
        self.progress("Setting up MQTT, the Farm Resilience hub and the discovered agent ...")
        flow = self.client.start_flow("mqtt")
        self._finish(flow, {"broker": "127.0.0.1", "port": broker_port})
        monitored = [f"sensor.{sensor_object_id(sensor)}" for sensor in self.sensors]
        actuators = [actuator.entity_id for actuator in FARM_ACTUATORS]
        self._wait_for_entities([*monitored, *actuators])
        flow = self.client.start_flow("farm_resilience")
        self._finish(
            flow,
            {
                "topic_prefix": "farm_resilience",
                "tracked_entities": [],
                "monitored_sensors": monitored,
            },
        )
        self._confirm_discovered_agent()
        self._wait_for_entities(["binary_sensor.farm_east_connectivity"])
        automations = self._demo_automations()
        self.client.call("automation", "turn_on", {"entity_id": list(automations.values())})
        # The first commands now, not at the next multiple of 10 s (a frost alert waits for one).
        timed = [entity for id_, entity in automations.items() if id_ != FROST_AUTOMATION]
        self.client.call("automation", "trigger", {"entity_id": timed})

    def _demo_automations(self) -> dict[str, str]:
        """The automations of demo/automations.yaml: id -> entity id (made from the alias)."""
        ids = {item["id"] for item in yaml.safe_load(AUTOMATIONS.read_text())}
        found = {
            state["attributes"]["id"]: entity_id
            for entity_id, state in self.client.states().items()
            if entity_id.startswith("automation.") and state["attributes"].get("id") in ids
        }
        if len(found) != len(ids):
            raise HomeAssistantError(f"automations missing: {sorted(ids)} gave {found}")
        return found

    def _finish(self, flow: dict[str, Any], user_input: dict[str, Any]) -> None:
        result = self.client.flow_step(flow["flow_id"], user_input)
        if result.get("type") != "create_entry":
            raise HomeAssistantError(f"{flow['handler']} set-up stopped at {result}")

    def _wait_for_entities(self, entity_ids: list[str], timeout_s: float = 60) -> None:
        """Wait until each entity exists and is available (a command to it would count)."""
        deadline = time.monotonic() + timeout_s
        while missing := set(entity_ids) - self._available():
            if time.monotonic() > deadline:
                raise HomeAssistantError(f"entities never appeared: {sorted(missing)}")
            time.sleep(0.3)

    def _available(self) -> set[str]:
        return {
            entity_id
            for entity_id, state in self.client.states().items()
            if state["state"] != "unavailable"
        }

    def _confirm_discovered_agent(self, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for flow in self.client.discovered_flows():
                if flow["handler"] == "farm_resilience" and flow["context"]["source"] == "mqtt":
                    self._finish(flow, {})
                    return
            time.sleep(0.3)
        raise HomeAssistantError(f"agent {AGENT_ID} was not discovered within {timeout_s:.0f} s")

    def agent_metrics(self) -> str:
        """The agent's /metrics page; empty while it does not answer."""
        try:
            return self.agent.metrics() if self.agent is not None else ""
        except (OSError, LookupError, AssertionError):
            return ""

    def worker_metrics(self) -> str:
        """The worker's /metrics page; empty while it does not answer."""
        try:
            return self.worker.metrics() if self.worker is not None else ""
        except (OSError, LookupError, AssertionError):
            return ""

    def figures(self) -> Figures:
        """Read Home Assistant's REST API, the agent's and the worker's /metrics."""
        states = self.client.states()
        page = self.agent_metrics()
        worker = self.worker_metrics()
        rate = states.get(HUB + "command_success_rate")
        degraded = states.get("binary_sensor.farm_resilience_degraded") or {}
        problem = states.get("binary_sensor.farm_east_backend_problem") or {}
        connectivity = states.get("binary_sensor.farm_east_connectivity") or {}
        route = states.get(AGENT + "route")
        commands = rate["attributes"].get("commands") if rate else None
        return Figures(
            commands=int(commands) if commands is not None else None,
            success_rate=_number(rate),
            latency_p50=_number(states.get(HUB + "command_latency_p50")),
            latency_p95=_number(states.get(HUB + "command_latency_p95")),
            failed=_number(states.get(HUB + "commands_failed")),
            degraded=degraded.get("state") == "on",
            reasons=list(degraded.get("attributes", {}).get("reasons") or []),
            agent_online=connectivity.get("state") == "on",
            route=route["state"] if route else None,
            relayed_in_ha=_number(states.get(AGENT + "relayed_readings")),
            agent_problems=list(problem.get("attributes", {}).get("problems") or []),
            received=metric(page, "farm_agent_readings_received_total"),
            relayed=metric(page, "farm_agent_readings_relayed_total"),
            spooled=metric(page, "farm_agent_spool_depth"),
            dead_lettered=metric(page, "farm_agent_readings_dead_lettered_total"),
            stored=metric(worker, "farm_agent_tasks_total", STORED),
            notified=metric(worker, "farm_agent_tasks_total", NOTIFIED),
            frost_alerts=self.frost.sent if self.frost else 0,
            frost_shown_at=_last_triggered(states, FROST_AUTOMATION),
            device_commands=self.devices.commands if self.devices else 0,
            device_ignored=self.devices.ignored if self.devices else 0,
        )

    def agent_running(self) -> bool:
        return self.agent is not None and self.agent.running

    def worker_running(self) -> bool:
        return self.worker is not None and self.worker.running

    def logs(self) -> str:
        """The tails of the Home Assistant, agent and worker logs, for a failure report."""
        tails = [f"--- Home Assistant log (tail) ---\n{self.home_assistant.tail()}"]
        for name in ("agent", "worker"):
            log = self.folder / f"{name}.log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            tails.append(f"--- {name} log (tail) ---\n{tail}")
        return "\n".join(tails)

    def close(self) -> None:
        """Stop Home Assistant, the farm, the worker and the agent (drained), and the services."""
        self.home_assistant.stop()
        for part in (self.devices, self.simulator, self.frost):
            if part is not None:
                with contextlib.suppress(Exception):
                    part.stop()
        if self.worker is not None:
            self.worker.stop()
            self.worker_exit_code = self.worker.returncode
        if self.agent is not None:
            self.agent.stop()  # SIGTERM: the graceful drain; SIGKILL after 15 s
            self.agent_exit_code = self.agent.returncode
        self.services.close()
        shutil.rmtree(self.folder, ignore_errors=True)
