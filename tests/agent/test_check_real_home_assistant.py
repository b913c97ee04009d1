"""The Home Assistant check against a real Home Assistant, started once; the hub set up by flow."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from farm_agent.config import HomeAssistantConfig
from farm_agent.health.probes.home_assistant import check_home_assistant
from tools.home_assistant import (
    INTEGRATION,
    HomeAssistantClient,
    HomeAssistantProcess,
    Login,
    pick_port,
)

pytest.importorskip("homeassistant", reason="Home Assistant is installed on Python 3.13 only")

HUB = "binary_sensor.farm_resilience_degraded"
# Only what the check needs: the REST API, config flows, onboarding (for a token).
CONFIGURATION = """\
homeassistant:
  name: Farm check
  latitude: 52.37
  longitude: 4.89
  elevation: 0
  unit_system: metric
  time_zone: UTC
  currency: EUR
  country: NL
  language: en
http:
  server_host: 127.0.0.1
  server_port: {port}
api:
config:
onboarding:
logger:
  default: warning
"""


@dataclass(frozen=True)
class RealHomeAssistant:
    url: str
    client: HomeAssistantClient

    def config(self, token: str | None = None) -> HomeAssistantConfig:
        return HomeAssistantConfig(url=self.url, token=token or self.client.token, hub_entity=HUB)


def write_configuration(folder: Path, port: int) -> None:
    folder.mkdir(parents=True)
    (folder / "configuration.yaml").write_text(CONFIGURATION.format(port=port))
    (folder / "custom_components").mkdir()
    (folder / "custom_components" / "farm_resilience").symlink_to(INTEGRATION)
    (folder / ".storage").mkdir()
    # Every onboarding step but the owner's is done; the owner is made through the API.
    done = {"core_config", "analytics", "integration"}
    onboarding = {"version": 4, "minor_version": 1, "key": "onboarding", "data": {"done": [*done]}}
    (folder / ".storage" / "onboarding").write_text(json.dumps(onboarding))


@pytest.fixture(scope="module")
def real_home_assistant(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealHomeAssistant]:
    port = pick_port(None)
    folder = tmp_path_factory.mktemp("home-assistant") / "config"
    write_configuration(folder, port)
    process = HomeAssistantProcess(folder, port)
    process.start()
    try:
        process.wait_ready(120)
        client = HomeAssistantClient(port)
        client.onboard(Login.generate())
        yield RealHomeAssistant(process.url, client)
    finally:
        process.stop()


async def test_a_real_home_assistant_answers_and_the_check_follows_the_hub_being_set_up(
    real_home_assistant: RealHomeAssistant,
) -> None:
    before = await check_home_assistant(real_home_assistant.config(), timeout_s=10)
    refused = await check_home_assistant(real_home_assistant.config("not-the-token"), 10)

    flow = await asyncio.to_thread(real_home_assistant.client.start_flow, "farm_resilience")
    user_input = {
        "topic_prefix": "farm_resilience",
        "tracked_entities": [],
        "monitored_sensors": [],
    }
    created = await asyncio.to_thread(
        real_home_assistant.client.flow_step, flow["flow_id"], user_input
    )
    after = await check_home_assistant(real_home_assistant.config(), timeout_s=10)

    assert (before.ok, before.detail) == (False, f"Farm Resilience hub not loaded: {HUB} not found")
    assert (refused.ok, refused.detail) == (False, "the token is refused (401)")
    assert created["type"] == "create_entry"
    assert after.ok is True, after.detail
    assert after.detail.startswith(f"API answers; hub loaded ({HUB} ")
