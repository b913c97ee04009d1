"""docs/contracts.md names every public contract the code has: it cannot go stale silently.

Pure and fast: the config schema and the command line's parser are walked in
process; the integration's constants and actions are read as source text, so no
Home Assistant is imported (these tests also run on Python 3.11). No service is
needed: the folder's autouse fixtures that start them are overridden below.
"""

from __future__ import annotations

import argparse
import ast
from collections.abc import Iterator
from typing import Any

import pytest
import voluptuous as vol
import yaml

from farm_agent.commands.cli import build_parser
from farm_agent.config_file import CONFIG_SCHEMA
from tests.support.agent import REPO

CONTRACTS = REPO / "docs" / "contracts.md"
INTEGRATION = REPO / "custom_components" / "farm_resilience"
# The integration's constants whose values are public names, by the prefix of theirs.
PUBLIC_CONSTANTS = ("CONF_", "OUTCOME_", "EVENT_")


@pytest.fixture
def services_serving() -> None:
    """Nothing to start: these tests read files and walk schemas."""


@pytest.fixture
def no_task_figures_left_behind() -> None:
    """No worker runs here, so there are no task figures to forget."""


def config_keys(schema: Any, prefix: str = "") -> Iterator[str]:
    """Every key the schema accepts, as a dotted path; `[]` stands for a list's items."""
    if isinstance(schema, vol.Schema):
        schema = schema.schema
    if isinstance(schema, vol.Any | vol.All):
        for option in schema.validators:
            yield from config_keys(option, prefix)
        return
    if isinstance(schema, list):
        for item in schema:
            yield from config_keys(item, f"{prefix}[]")
        return
    if not isinstance(schema, dict):
        return
    for marker, value in schema.items():
        if not isinstance(marker, vol.Marker):
            return  # a mapping of free keys (task types), not settings
        key = f"{prefix}.{marker.schema}" if prefix else str(marker.schema)
        yield key
        yield from config_keys(value, key)


def commands(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """Every command a user types (`queue dlq list`), with its parser."""
    nested = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not nested:
        yield " ".join(path), parser
        return
    for name, sub in nested[0].choices.items():
        yield from commands(sub, (*path, name))


def options(parser: argparse.ArgumentParser) -> set[str]:
    """The long options of a parser, but help."""
    found = {flag for action in parser._actions for flag in action.option_strings}
    return {flag for flag in found if flag.startswith("--") and flag != "--help"}


def integration_names() -> dict[str, str]:
    """The integration's public names from const.py: constant -> value."""
    tree = ast.parse((INTEGRATION / "const.py").read_text(encoding="utf-8"))
    found: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            name, value = node.target.id, node.value
        elif isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            name, value = node.targets[0].id, node.value
        else:
            continue
        if name.startswith(PUBLIC_CONSTANTS) and isinstance(value, ast.Constant):
            found[name] = str(value.value)
    return found


def undocumented(names: list[str]) -> list[str]:
    text = CONTRACTS.read_text(encoding="utf-8")
    return [name for name in names if f"`{name}" not in text]


def test_every_config_key_of_the_schema_is_in_the_contracts() -> None:
    keys = list(config_keys(CONFIG_SCHEMA))

    assert len(keys) > 80, "the walk reaches every section and list"
    missing = [key for key in keys if f"`{key}`" not in CONTRACTS.read_text(encoding="utf-8")]

    assert missing == []


def test_every_farm_agent_command_and_option_is_in_the_contracts() -> None:
    parser = build_parser()
    found = dict(commands(parser))

    assert {"run", "queue dlq requeue", "sql"} <= set(found)
    assert undocumented([f"farm-agent {name}" for name in found]) == []
    every_option = options(parser).union(*(options(sub) for sub in found.values()))
    assert undocumented(sorted(every_option)) == []


def test_every_option_key_outcome_and_event_of_the_integration_is_in_the_contracts() -> None:
    names = integration_names()

    assert {"CONF_TRACKED_ENTITIES", "OUTCOME_BOUNCED", "EVENT_OUTAGE_OVER"} <= set(names)
    assert undocumented([f"{value}`" for value in names.values()]) == []


def test_every_action_of_the_integration_and_its_fields_are_in_the_contracts() -> None:
    actions = yaml.safe_load((INTEGRATION / "services.yaml").read_text(encoding="utf-8"))

    assert "send_command" in actions
    assert undocumented([f"farm_resilience.{action}`" for action in actions]) == []
    fields = [f"{field}`" for spec in actions.values() for field in (spec or {}).get("fields", {})]
    assert undocumented(fields) == []
