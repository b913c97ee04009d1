"""The config schema declares the keys once: the frozen config and the docs follow it."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import voluptuous as vol

from farm_agent.config_file import CONFIG_SCHEMA, parse_config
from tests.support.agent import REPO

# Keys that do not become a field of the same name, and what they become instead.
SETTLED = {
    "mqtt.password_file": "mqtt.password",
    "http.listen": "http.host, http.port",
    "tasks.backoff": "tasks.backoff_base_s, tasks.backoff_max_s",
}


def schema_keys(schema: Any, prefix: str = "", depth: int = 2) -> Iterator[str]:
    """Every key the schema accepts, as `section.key`, down to `depth` levels."""
    if isinstance(schema, vol.Schema):
        schema = schema.schema
    if isinstance(schema, vol.Any):
        for option in schema.validators:
            yield from schema_keys(option, prefix, depth)
        return
    if not isinstance(schema, dict) or depth == 0:
        return
    for marker, value in schema.items():
        if not isinstance(marker, vol.Marker):
            return  # a mapping of free keys (task types), not settings
        key = f"{prefix}{marker.schema}"
        yield key
        yield from schema_keys(value, f"{key}.", depth - 1)


def test_every_key_the_schema_accepts_is_in_the_configuration_tables() -> None:
    documented = (REPO / "README.md").read_text() + (REPO / "docs" / "tasks.md").read_text()

    keys = list(schema_keys(CONFIG_SCHEMA))
    settings = [key for key in keys if "." in key or not any(k.startswith(f"{key}.") for k in keys)]
    undocumented = [key for key in settings if f"`{key}`" not in documented]

    assert len(settings) > 50

    assert undocumented == []


def test_every_setting_lands_in_the_frozen_config_under_its_own_name() -> None:
    config = parse_config(
        {"agent_id": "farm-east", "backend": {"direct_dsn": "postgresql://u@db.example/farm"}}
    )
    sections = {field.name: getattr(config, field.name) for field in dataclasses.fields(config)}
    fields = {
        f"{name}.{field.name}"
        for name, section in sections.items()
        if dataclasses.is_dataclass(section)
        for field in dataclasses.fields(section)
    } | set(sections)

    missing = [
        key
        for key in schema_keys(CONFIG_SCHEMA)
        if key not in fields and key not in SETTLED and key.count(".") == 1
    ]

    assert missing == []
