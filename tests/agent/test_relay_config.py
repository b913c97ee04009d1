"""Relay settings that cannot keep the delivery guarantee are refused, naming the key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from farm_agent.config import MAX_RECEIVE_MAXIMUM
from tests.support.agent import farm_agent_cli, write_config


def config_with(**mqtt: Any) -> dict[str, Any]:
    return {
        "agent_id": "farm-east",
        "mqtt": {"host": "127.0.0.1", **mqtt},
        "backend": {"direct_dsn": "postgresql://postgres@127.0.0.1:5432/postgres"},
    }


@pytest.mark.parametrize("command", ["validate", "run"])
def test_qos_2_is_refused_with_the_reason(tmp_path: Path, command: str) -> None:
    path = write_config(tmp_path / "agent.yaml", config_with(qos=2))

    result = farm_agent_cli(command, "--config", str(path))

    assert result.returncode == 2
    assert "mqtt.qos: must be 0 or 1" in result.stderr
    assert "exactly once" in result.stderr


@pytest.mark.parametrize("command", ["validate", "run"])
def test_a_receive_maximum_reaching_into_the_packet_id_cycle_is_refused(
    tmp_path: Path, command: str
) -> None:
    path = write_config(tmp_path / "agent.yaml", config_with(receive_maximum=40_000))

    result = farm_agent_cli(command, "--config", str(path))

    assert result.returncode == 2
    assert f"mqtt.receive_maximum: must be 1-{MAX_RECEIVE_MAXIMUM}" in result.stderr
    assert "65,535" in result.stderr


def test_the_largest_receive_maximum_allowed_is_valid(tmp_path: Path) -> None:
    path = write_config(
        tmp_path / "agent.yaml", config_with(receive_maximum=MAX_RECEIVE_MAXIMUM, qos=1)
    )

    result = farm_agent_cli("validate", "--config", str(path))

    assert result.returncode == 0, result.stderr
