"""Every key the code uses is translated, and strings.json equals translations/en.json."""

from __future__ import annotations

import json
import re
from pathlib import Path

from custom_components.farm_resilience import binary_sensor, config_flow, issues, sensor

PACKAGE = Path(config_flow.__file__).parent
STRINGS = json.loads((PACKAGE / "strings.json").read_text())


def used(pattern: str) -> set[str]:
    """Return the captures of `pattern` over the integration's Python modules."""
    return {
        match
        for module in PACKAGE.glob("*.py")
        for match in re.findall(pattern, module.read_text())
    }


def test_english_translation_is_strings_json() -> None:
    assert json.loads((PACKAGE / "translations" / "en.json").read_text()) == STRINGS


def test_every_flow_error_is_translated_where_it_can_appear() -> None:
    flow_errors = {"invalid_topic_prefix", "unknown_entity", "invalid_agent_id"}
    option_errors = {error for _, _, error in config_flow.RANGES.values()}
    option_errors |= {"latency_above_timeout", "unknown_entity"}

    assert flow_errors <= STRINGS["config"]["error"].keys()
    assert option_errors <= STRINGS["options"]["error"].keys()
    assert used(r'errors\[[A-Z_]+\] = "(\w+)"') <= flow_errors | option_errors


def test_every_exception_issue_and_entity_key_is_translated() -> None:
    descriptions = {
        "sensor": [*sensor.SENSORS, *sensor.AGENT_SENSORS],
        "binary_sensor": [
            binary_sensor.DEGRADED,
            binary_sensor.BROKER_CONNECTED,
            *binary_sensor.AGENT_BINARY_SENSORS,
        ],
    }
    for platform, platform_descriptions in descriptions.items():
        keys = {description.translation_key for description in platform_descriptions}
        assert keys == STRINGS["entity"][platform].keys()
    known = STRINGS["entity"]["sensor"].keys() | STRINGS["entity"]["binary_sensor"].keys()
    known |= STRINGS["exceptions"].keys() | STRINGS["issues"].keys()

    assert used(r'translation_key="(\w+)"') <= known
    assert issues.BROKER_ISSUE in STRINGS["issues"]
    assert used(r'translation_key="(\w+)"') >= STRINGS["exceptions"].keys() | {"device_down"}


def test_every_route_is_translated_and_has_an_icon() -> None:
    icons = json.loads((PACKAGE / "icons.json").read_text())
    route = next(d for d in sensor.AGENT_SENSORS if d.key == "route")

    assert set(STRINGS["entity"]["sensor"]["route"]["state"]) == set(route.options or [])
    for platform in ("sensor", "binary_sensor"):
        assert icons["entity"][platform].keys() == STRINGS["entity"][platform].keys()


def test_every_config_step_is_translated() -> None:
    steps = set(used(r'step_id="(\w+)"'))

    assert steps == STRINGS["config"]["step"].keys() | {"init"}
    assert set(used(r'reason="(\w+)"')) <= STRINGS["config"]["abort"].keys()
