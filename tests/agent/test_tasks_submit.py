"""Submitting tasks: `farm-agent task submit` (one, a file, bad input) and `submit()` in Python."""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import yaml

from farm_agent.tasks import TaskInputError, submit
from tests.agent.support import tasks_section
from tests.support.agent import TEST_SECRET, farm_agent_cli, write_config
from tests.support.queues import queue_length, queue_rows
from tools.services import Postgres, free_port

ConfigMaker = Callable[..., dict[str, Any]]


@pytest.fixture
def config_path(make_config: ConfigMaker, tmp_path: Path, test_id: str) -> Path:
    return write_config(tmp_path / "agent.yaml", make_config(tasks=tasks_section(test_id, {})))


def task_queue(config_path: Path, priority: str) -> str:
    return f"{yaml.safe_load(config_path.read_text())['tasks']['queue']}_{priority}"


async def test_task_submit_prints_the_id_of_the_task_it_queued(
    config_path: Path, postgres: Postgres
) -> None:
    result = farm_agent_cli(
        "task", "submit", "--config", str(config_path),
        "--type", "irrigate.zone", "--priority", "high", "--payload", '{"zone": 3, "litres": 12.5}',
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    task_id = result.stdout.strip()
    assert uuid.UUID(task_id).version == 4
    [row] = await queue_rows(postgres.dsn, task_queue(config_path, "high"))
    envelope = row["message"]
    assert envelope["id"] == task_id
    assert (envelope["v"], envelope["type"], envelope["priority"]) == (1, "irrigate.zone", "high")
    assert envelope["payload"] == {"zone": 3, "litres": 12.5}
    assert envelope["submitted_at"].endswith("Z")
    assert datetime.fromisoformat(envelope["submitted_at"]).tzinfo is not None


async def test_task_submit_without_payload_or_priority_queues_null_at_normal(
    config_path: Path, postgres: Postgres
) -> None:
    result = farm_agent_cli("task", "submit", "--config", str(config_path), "--type", "report")

    assert result.returncode == 0, result.stderr
    [row] = await queue_rows(postgres.dsn, task_queue(config_path, "normal"))
    assert row["message"]["payload"] is None
    assert row["message"]["priority"] == "normal"


async def test_task_submit_file_queues_every_line_and_prints_their_ids_in_order(
    config_path: Path, postgres: Postgres, tmp_path: Path
) -> None:
    lines = [
        {"type": "irrigate", "priority": "high", "payload": {"zone": 1}},
        {"type": "report"},
        {"type": "cleanup", "priority": "low", "payload": [1, "two", None]},
        {"type": "report", "payload": "weekly"},
    ]
    tasks_file = tmp_path / "tasks.jsonl"
    tasks_file.write_text("\n".join(json.dumps(line) for line in lines[:2]) + "\n\n")
    tasks_file.write_text(
        tasks_file.read_text() + "\n".join(json.dumps(line) for line in lines[2:]) + "\n"
    )

    result = farm_agent_cli(
        "task", "submit", "--config", str(config_path), "--file", str(tasks_file)
    )
    piped = farm_agent_cli(
        "task", "submit", "--config", str(config_path), "--file", "-",
        stdin=json.dumps({"type": "from-stdin", "priority": "low"}) + "\n",
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    assert piped.returncode == 0, piped.stderr
    ids = result.stdout.split()
    assert len(ids) == 4
    queued = {}
    for priority in ("high", "normal", "low"):
        for row in await queue_rows(postgres.dsn, task_queue(config_path, priority)):
            queued[row["message"]["id"]] = row["message"]
    assert [(queued[i]["type"], queued[i]["priority"], queued[i]["payload"]) for i in ids] == [
        (line["type"], line.get("priority", "normal"), line.get("payload")) for line in lines
    ]
    assert queued[piped.stdout.strip()]["type"] == "from-stdin"


@pytest.mark.parametrize(
    ("arguments", "named"),
    [
        (["--type", "Irrigate Zone"], "type: must be 1-64 characters of a-z, 0-9"),
        (["--type", "x" * 65], "type: must be 1-64 characters"),
        (["--type", "irrigate", "--payload", "{zone: 3"], "payload: not JSON"),
        (["--type", "irrigate", "--payload", "NaN"], "payload: not JSON"),
        (["--type", "irrigate", "--payload", '"a\\u0000b"'], "payload: contains a \\u0000"),
        (["--type", "irrigate", "--priority", "urgent"], "argument --priority: invalid choice"),
    ],
)
async def test_task_submit_with_bad_input_says_why_and_sends_nothing(
    config_path: Path, postgres: Postgres, arguments: list[str], named: str
) -> None:
    result = farm_agent_cli("task", "submit", "--config", str(config_path), *arguments)

    assert result.returncode == 2
    assert named in result.stderr
    for priority in ("high", "normal", "low"):
        assert await queue_length(postgres.dsn, task_queue(config_path, priority)) == 0


@pytest.mark.parametrize(
    ("bad_line", "named"),
    [
        (
            '{"type": "report", "priority": "urgent"}',
            "line 3: priority: must be high, normal or low",
        ),
        ('{"type": "report", "payload": {"a": 1}', "line 3: not JSON"),
        ('{"typ": "report"}', "line 3: unknown key 'typ'"),
        ('{"payload": 1}', "line 3: type: required"),
        ('["report"]', "line 3: expected an object"),
    ],
)
async def test_task_submit_file_with_one_bad_line_names_it_and_sends_nothing(
    config_path: Path, postgres: Postgres, tmp_path: Path, bad_line: str, named: str
) -> None:
    tasks_file = tmp_path / "tasks.jsonl"
    good = json.dumps({"type": "report", "payload": 1})
    tasks_file.write_text(f"{good}\n{good}\n{bad_line}\n{good}\n")

    result = farm_agent_cli(
        "task", "submit", "--config", str(config_path), "--file", str(tasks_file)
    )

    assert result.returncode == 2
    assert f"{tasks_file} {named}" in result.stderr
    assert "nothing sent" in result.stderr
    assert result.stdout == ""
    for priority in ("high", "normal", "low"):
        assert await queue_length(postgres.dsn, task_queue(config_path, priority)) == 0


def test_task_submit_without_a_database_exits_1_without_showing_the_password(
    make_config: ConfigMaker, tmp_path: Path, test_id: str
) -> None:
    closed = f"postgresql://farm:{TEST_SECRET}@127.0.0.1:{free_port()}/farm"
    config = make_config(pooler_dsn=None, direct_dsn=closed, tasks=tasks_section(test_id, {}))
    path = write_config(tmp_path / "agent.yaml", config)

    result = farm_agent_cli("task", "submit", "--config", str(path), "--type", "report")

    assert result.returncode == 1
    assert "nothing sent" in result.stderr
    assert TEST_SECRET not in result.stdout + result.stderr


async def test_submit_from_python_with_a_dsn_or_a_connection(
    postgres: Postgres, test_id: str
) -> None:
    queue = f"{test_id[:33]}_py"

    by_dsn = await submit(postgres.dsn, "report", {"day": "monday"}, queue=queue)
    connection = await asyncpg.connect(postgres.dsn)
    try:
        by_connection = await submit(connection, "irrigate", [1, 2], "low", queue=queue)
        with pytest.raises(TaskInputError, match="priority: must be high, normal or low"):
            await submit(connection, "report", 1, "urgent", queue=queue)
        with pytest.raises(TaskInputError, match="payload: not JSON"):
            await submit(connection, "report", math.nan, queue=queue)
        with pytest.raises(TaskInputError, match="payload: not JSON"):
            await submit(connection, "report", {"when": datetime.now()}, queue=queue)
        with pytest.raises(TaskInputError, match="type: must be"):
            await submit(connection, "", 1, queue=queue)
    finally:
        await connection.close()

    [normal] = await queue_rows(postgres.dsn, f"{queue}_normal")
    [low] = await queue_rows(postgres.dsn, f"{queue}_low")
    assert normal["message"]["id"] == by_dsn
    assert low["message"]["id"] == by_connection
    assert await queue_rows(postgres.dsn, f"{queue}_high") == []
