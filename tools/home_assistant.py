"""A real Home Assistant for the demo: a generated config directory, the process, its API.

The configuration loads only what the demo needs and nothing that downloads at
start (no `default_config`): the frontend, the API, automations and a YAML
dashboard from `demo/`; MQTT comes as a config entry, through its flow. The
integration is a symlink to the checkout's `custom_components/farm_resilience`, so
the demo always runs the code in front of you.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
DEMO_DIR = ROOT / "demo"
INTEGRATION = ROOT / "custom_components" / "farm_resilience"
DASHBOARD_PATH = "farm-resilience"
PREFERRED_PORT = 8123


class HomeAssistantError(RuntimeError):
    """Home Assistant did not start, or refused a step of the set-up."""


@dataclass(frozen=True, slots=True)
class Login:
    """The owner account the demo creates; printed so a person can log in."""

    username: str
    password: str
    name: str = "Farmer"

    @classmethod
    def generate(cls) -> Login:
        return cls("farmer", secrets.token_urlsafe(9))


def pick_port(preferred: int | None = PREFERRED_PORT) -> int:
    """`preferred` if nothing listens there, else a free port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As Home Assistant binds: a port left in TIME_WAIT by a previous run is free.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if preferred is not None:
            with contextlib.suppress(OSError):
                sock.bind(("127.0.0.1", preferred))
                return preferred
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


CONFIGURATION = """\
homeassistant:
  name: Farm Resilience demo
  latitude: 52.37
  longitude: 4.89
  elevation: 0
  unit_system: metric
  time_zone: UTC
  currency: EUR
  country: NL
  language: en
  internal_url: "http://127.0.0.1:{port}"
http:
  server_host: 127.0.0.1
  server_port: {port}
frontend:
config:
api:
automation: !include automations.yaml
script:
lovelace:
  mode: storage
  dashboards:
    {dashboard}:
      mode: yaml
      filename: dashboard.yaml
      title: Farm Resilience
      icon: mdi:sprout
      show_in_sidebar: true
logger:
  default: warning
  logs:
    custom_components.farm_resilience: info
"""


def write_config(folder: Path, port: int) -> None:
    """Write the config directory: configuration, the demo's automations and dashboard."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "configuration.yaml").write_text(
        CONFIGURATION.format(port=port, dashboard=DASHBOARD_PATH)
    )
    # Links, not copies: edit demo/dashboard.yaml and refresh the page to see it.
    (folder / "automations.yaml").symlink_to(DEMO_DIR / "automations.yaml")
    (folder / "dashboard.yaml").symlink_to(DEMO_DIR / "dashboard.yaml")
    (folder / "custom_components").mkdir()
    (folder / "custom_components" / "farm_resilience").symlink_to(INTEGRATION)
    storage = folder / ".storage"
    storage.mkdir()
    # Onboarding: the owner is created through the API (`HomeAssistantClient.onboard`); the
    # other steps are marked done, because finishing "core_config" through the API sets up
    # weather, radio and text-to-speech integrations that download at start.
    onboarding = {
        "version": 4,
        "minor_version": 1,
        "key": "onboarding",
        "data": {"done": ["core_config", "analytics", "integration"]},
    }
    (storage / "onboarding").write_text(json.dumps(onboarding))


def require_frontend() -> None:
    """Fail clearly without the frontend: with `--skip-pip` Home Assistant would not fetch it."""
    if importlib.util.find_spec("hass_frontend") is None:
        raise HomeAssistantError(
            "the package home-assistant-frontend is not installed; run 'make venv'"
        )


class HomeAssistantProcess:
    """`hass -c <folder>` in a process group of its own, stopped with SIGTERM then SIGKILL."""

    def __init__(self, folder: Path, port: int) -> None:
        self.folder = folder
        self.port = port
        self.output = folder.parent / "home-assistant.out"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.folder / "home-assistant.log"

    def start(self) -> None:
        with self.output.open("ab") as output:
            self.process = subprocess.Popen(
                # --skip-pip: never install into the venv at run time; `make` installs it all.
                [sys.executable, "-m", "homeassistant", "-c", str(self.folder), "--skip-pip"],
                stdout=output,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def wait_ready(self, timeout_s: float = 180) -> None:
        """Wait until the HTTP API answers (it starts once every integration is set up)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                raise HomeAssistantError(f"Home Assistant exited; see {self.log}")
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/api/onboarding", timeout=2),
            ):
                return
            time.sleep(0.2)
        raise HomeAssistantError(f"Home Assistant did not answer within {timeout_s:.0f} s")

    def tail(self, characters: int = 3000) -> str:
        with contextlib.suppress(OSError):
            return self.log.read_text(errors="replace")[-characters:]
        return ""

    def stop(self, timeout_s: float = 30) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout_s)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()


class HomeAssistantClient:
    """The REST and websocket API, as the owner the demo created."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.client_id = f"{self.url}/"
        self.token: str | None = None

    def request(self, method: str, path: str, body: Any = None, timeout_s: float = 30) -> Any:
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        data = None if body is None else json.dumps(body).encode()
        url = f"http://127.0.0.1:{self.port}{path}"
        request = urllib.request.Request(url, data, headers, method=method)
        try:
            # S310: the Request above is always http://127.0.0.1.
            with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310
                text = response.read().decode()
        except urllib.error.HTTPError as err:
            detail = err.read().decode(errors="replace")[:500]
            raise HomeAssistantError(f"{method} {path}: {err.code} {detail}") from err
        return json.loads(text) if text else None

    def onboard(self, login: Login) -> None:
        """Create the owner through onboarding, then keep a long-lived token for the API."""
        answer = self.request(
            "POST",
            "/api/onboarding/users",
            {
                "client_id": self.client_id,
                "name": login.name,
                "username": login.username,
                "password": login.password,
                "language": "en",
            },
        )
        form = urllib.parse.urlencode(
            {
                "grant_type": "authorization_code",
                "code": answer["auth_code"],
                "client_id": self.client_id,
            }
        ).encode()
        token_url = f"http://127.0.0.1:{self.port}/auth/token"
        with urllib.request.urlopen(token_url, form, timeout=30) as response:
            self.token = json.loads(response.read())["access_token"]
        # Access tokens expire after 30 minutes; a demo may run longer.
        (long_lived,) = self.websocket(
            {"type": "auth/long_lived_access_token", "client_name": "demo", "lifespan": 365}
        )
        self.token = str(long_lived)

    def websocket(self, *commands: dict[str, Any]) -> list[Any]:
        """Send commands over the websocket API; return their results in order."""
        return asyncio.run(self._websocket(commands))

    async def _websocket(self, commands: tuple[dict[str, Any], ...]) -> list[Any]:
        results: list[Any] = []
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session,
            session.ws_connect(f"{self.url}/api/websocket") as socket_,
        ):
            await socket_.receive_json()  # auth_required
            await socket_.send_json({"type": "auth", "access_token": self.token})
            if (await socket_.receive_json())["type"] != "auth_ok":
                raise HomeAssistantError("websocket authentication refused")
            for number, command in enumerate(commands, start=1):
                await socket_.send_json({"id": number, **command})
                while (answer := await socket_.receive_json())["id"] != number:
                    pass
                if not answer.get("success"):
                    raise HomeAssistantError(f"{command['type']}: {answer.get('error')}")
                results.append(answer["result"])
        return results

    def states(self) -> dict[str, dict[str, Any]]:
        return {state["entity_id"]: state for state in self.request("GET", "/api/states")}

    def call(self, domain: str, service: str, data: dict[str, Any]) -> None:
        self.request("POST", f"/api/services/{domain}/{service}", data)

    def start_flow(self, handler: str) -> dict[str, Any]:
        result: dict[str, Any] = self.request(
            "POST", "/api/config/config_entries/flow", {"handler": handler}
        )
        return result

    def flow_step(self, flow_id: str, user_input: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self.request(
            "POST", f"/api/config/config_entries/flow/{flow_id}", user_input
        )
        return result

    def discovered_flows(self) -> list[dict[str, Any]]:
        """Flows in progress that no user started: discoveries waiting for confirmation."""
        (flows,) = self.websocket({"type": "config_entries/flow/progress"})
        return list(flows)
