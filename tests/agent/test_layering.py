"""The agent's package keeps its layers: imports flow one way, read from the source itself.

Shared plumbing (config, database, failures, masking, mqtt, ...) imports no job; each
job (relay, health, tasks) imports only the plumbing and itself, except that health
reads the relay and the tasks through their packages alone (`farm_agent.relay`, and
`farm_agent.tasks` for the task figures it judges); the running agent wires relay and
health; only the commands import everything.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "agent" / "farm_agent"
JOBS = ("relay", "health", "tasks")
# What each part may import besides the shared plumbing and itself.
ALLOWED = {
    "relay": set(),
    "health": {"farm_agent.relay", "farm_agent.tasks"},
    "tasks": set(),
    "agent": {"relay", "health"},
    "commands": {"relay", "health", "tasks", "agent"},
    "__main__": {"commands"},
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def part_of(module: str) -> str:
    """The top-level part a module belongs to: a job, `agent`, `commands`, or `shared`."""
    top = module.split(".")[1] if module.count(".") else ""
    return top if top in (*JOBS, "agent", "commands", "__main__") else "shared"


def imports_of(path: Path) -> Iterator[str]:
    """Every farm_agent module `path` imports, anywhere in it (functions and TYPE_CHECKING too)."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names if alias.name.startswith("farm_agent"))
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("farm_agent"):
            assert node.module is not None
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                yield submodule if _exists(submodule) else node.module


def _exists(module: str) -> bool:
    relative = Path(*module.split(".")[1:])
    return (PACKAGE / relative).with_suffix(".py").exists() or (PACKAGE / relative).is_dir()


def import_graph() -> dict[str, set[str]]:
    return {
        module_name(path): set(imports_of(path)) - {module_name(path)}
        for path in sorted(PACKAGE.rglob("*.py"))
    }


def wrong_way(graph: dict[str, set[str]]) -> list[str]:
    """Each import against the layering, as `importer -> imported`."""
    wrong = []
    for importer, imported in graph.items():
        mine = part_of(importer)
        allowed = ALLOWED.get(mine, set())
        for target in sorted(imported):
            theirs = part_of(target)
            if theirs in ("shared", mine) or theirs in allowed or target in allowed:
                continue
            wrong.append(f"{importer} -> {target}")
    return wrong


def test_imports_flow_one_way_from_commands_to_jobs_to_shared_plumbing() -> None:
    graph = import_graph()

    assert "farm_agent.relay.pipeline" in graph, "the package is where this test looks"
    assert wrong_way(graph) == []


def test_the_layering_check_catches_an_import_the_wrong_way() -> None:
    graph = {
        "farm_agent.relay.forward": {"farm_agent.health.judging", "farm_agent.tasks.sql"},
        "farm_agent.health.judging": {"farm_agent.relay.route", "farm_agent.relay"},
        "farm_agent.config": {"farm_agent.tasks"},
        "farm_agent.tasks.worker": {"farm_agent.commands.tasks"},
    }

    assert wrong_way(graph) == [
        "farm_agent.relay.forward -> farm_agent.health.judging",
        "farm_agent.relay.forward -> farm_agent.tasks.sql",
        "farm_agent.health.judging -> farm_agent.relay.route",
        "farm_agent.config -> farm_agent.tasks",
        "farm_agent.tasks.worker -> farm_agent.commands.tasks",
    ]


def test_only_the_mqtt_package_touches_paho() -> None:
    touching = sorted(
        module_name(path)
        for path in PACKAGE.rglob("*.py")
        if any(_imports_paho(node) for node in ast.walk(ast.parse(path.read_text())))
    )

    assert touching
    assert [module for module in touching if not module.startswith("farm_agent.mqtt")] == []


def _imports_paho(node: ast.AST) -> bool:
    if isinstance(node, ast.Import):
        return any(alias.name.startswith("paho") for alias in node.names)
    return isinstance(node, ast.ImportFrom) and (node.module or "").startswith("paho")
