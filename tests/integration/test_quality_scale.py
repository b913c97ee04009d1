"""The rules hassfest checks on a Platinum integration's source, checked here the same way.

`runtime-data`: set-up stores its object in `entry.runtime_data`. `strict-typing`:
every function Home Assistant hands a config entry declares it as the typed
`<Name>ConfigEntry` (hassfest: script/hassfest/quality_scale_validation/runtime_data.py).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import yaml
from homeassistant.const import Platform

import custom_components.farm_resilience as integration

PACKAGE = Path(integration.__file__).parent
TYPED_ENTRY = re.compile(r"^[A-Za-z]+ConfigEntry$")
# Module -> functions Home Assistant calls with a config entry, and that argument's position.
ENTRY_ARGUMENTS: dict[str, dict[str, int]] = {
    "__init__": {
        "async_migrate_entry": 2,
        "async_remove_config_entry_device": 2,
        "async_remove_entry": 2,
        "async_setup_entry": 2,
        "async_unload_entry": 2,
    },
    "diagnostics": {"async_get_config_entry_diagnostics": 2, "async_get_device_diagnostics": 2},
    **{platform.value: {"async_setup_entry": 2} for platform in Platform},
}


def module(name: str) -> ast.Module:
    """Return the parsed source of one of the integration's modules."""
    return ast.parse((PACKAGE / f"{name}.py").read_text())


def functions(tree: ast.AST) -> dict[str, ast.FunctionDef | ast.AsyncFunctionDef]:
    """Return the functions and methods defined in `tree`, by name."""
    return {
        node.name: node
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    }


def annotation(function: ast.FunctionDef | ast.AsyncFunctionDef, position: int) -> str | None:
    """Return the name a function's argument at `position` (1-based) is annotated with."""
    hint = function.args.args[position - 1].annotation
    return hint.id if isinstance(hint, ast.Name) else None


def test_set_up_stores_its_runtime_data_in_the_config_entry() -> None:
    setup = functions(module("__init__"))["async_setup_entry"]
    entry = setup.args.args[1].arg

    stored = [
        node
        for node in ast.walk(setup)
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == entry
        and node.attr == "runtime_data"
        and isinstance(node.ctx, ast.Store)
    ]

    assert stored


def test_every_function_handed_a_config_entry_declares_the_typed_one() -> None:
    untyped = [
        f"{name}.{function}"
        for name, checked in ENTRY_ARGUMENTS.items()
        if (PACKAGE / f"{name}.py").exists()
        for function, position in checked.items()
        if (found := functions(module(name)).get(function)) is not None
        and not TYPED_ENTRY.match(annotation(found, position) or "")
    ]
    options_flow = functions(module("config_flow"))["async_get_options_flow"]
    if not TYPED_ENTRY.match(annotation(options_flow, 1) or ""):
        untyped.append("config_flow.async_get_options_flow")

    assert untyped == []


def test_quality_scale_gives_every_rule_a_status_and_every_exemption_a_reason() -> None:
    rules = yaml.safe_load((PACKAGE / "quality_scale.yaml").read_text())["rules"]
    statuses = {
        rule: value["status"] if isinstance(value, dict) else value for rule, value in rules.items()
    }

    assert set(statuses.values()) <= {"done", "exempt", "todo"}
    assert [
        rule for rule, value in rules.items() if statuses[rule] != "done" and "comment" not in value
    ] == []
    assert statuses["strict-typing"] == statuses["runtime-data"] == "done"
