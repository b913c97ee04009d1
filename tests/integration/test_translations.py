"""Every key the code uses is translated, and strings.json equals translations/en.json."""

from __future__ import annotations

import json
import re
from pathlib import Path

from custom_components.farm_resilience import config_flow

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
    flow_errors = {"invalid_topic_prefix", "unknown_entity"}
    option_errors = {error for _, _, error in config_flow.RANGES.values()}
    option_errors |= {"latency_above_timeout", "unknown_entity"}

    assert flow_errors <= STRINGS["config"]["error"].keys()
    assert option_errors <= STRINGS["options"]["error"].keys()
    assert used(r'errors\[[A-Z_]+\] = "(\w+)"') <= flow_errors | option_errors


def test_every_exception_issue_and_entity_key_is_translated() -> None:
    entity_keys = {*STRINGS["entity"]["sensor"], *STRINGS["entity"]["binary_sensor"]}
    known = entity_keys | STRINGS["exceptions"].keys() | STRINGS["issues"].keys()

    assert used(r'translation_key="(\w+)"') <= known
    assert used(r'translation_key="(\w+)"') >= entity_keys | {"device_down"}
