"""`farm-agent loadtest`: 100 clients per route on the real pooler and database, safely."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from farm_agent.commands.loadtest import LoadRequest, run_loadtest_command
from farm_agent.config_file import parse_config
from farm_agent.database import Route
from farm_agent.health.loadtest import LoadPlan, Progress, run_loadtest
from tests.support.agent import TEST_SECRET, farm_agent, with_secret, write_config
from tools.services import PgBouncer, Postgres

ConfigMaker = Callable[..., dict[str, Any]]
REMOTE_DSN = f"postgresql://postgres:{TEST_SECRET}@192.0.2.10:5432/farm"
CLOSED_DSN = f"postgresql://postgres:{TEST_SECRET}@127.0.0.1:1/farm"
PROGRESS = re.compile(
    r"^(pooler|direct): \d+/3 s, \d+ clients connected, [\d,]+ queries, 0 errors$"
)


async def test_100_clients_on_each_route_report_latencies_throughput_and_the_pooler_speedup(
    make_config: ConfigMaker, tmp_path: Path
) -> None:
    path = write_config(tmp_path / "load.yaml", make_config())

    result = await farm_agent(
        "loadtest", "--config", str(path), "--clients", "100", "--duration", "3", "--json"
    )

    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert list(report["routes"]) == ["pooler", "direct"]
    for figures in report["routes"].values():
        assert figures["clients"] == 100
        assert figures["queries"] > 100
        assert figures["errors"] == {}
        assert figures["pool_exhausted"] is False
        for timing in (figures["connect_ms"], figures["query_ms"]):
            assert list(timing) == ["p50", "p95", "p99"]
            assert 0 < timing["p50"] <= timing["p95"] <= timing["p99"]
        assert figures["throughput_per_s"] == pytest.approx(
            figures["queries"] / figures["duration_s"], rel=0.01
        )
    pooler, direct = report["routes"]["pooler"], report["routes"]["direct"]
    assert report["speedup"] == pytest.approx(
        pooler["throughput_per_s"] / direct["throughput_per_s"], abs=0.01
    )
    progress = [line for line in result.stderr.splitlines() if PROGRESS.match(line)]
    assert {line.split(":")[0] for line in progress} == {"pooler", "direct"}


async def test_an_exhausted_pool_is_named_in_pgbouncers_words_with_the_waiting_clients(
    small_pgbouncer: PgBouncer, postgres: Postgres
) -> None:
    backend = parse_config(
        {
            "agent_id": "farm-east",
            "backend": {
                "pooler_dsn": with_secret(small_pgbouncer.dsn),
                "pooler_admin_dsn": with_secret(small_pgbouncer.admin_dsn),
            },
        }
    ).backend
    # 20 clients for 12 client slots and 2 server connections, each query 0.3 s long.
    plan = LoadPlan(
        clients=20, duration_s=2, query="SELECT pg_sleep(0.3)", read_only_transaction=True
    )
    shown: list[Progress] = []

    report = await run_loadtest(backend, [Route.POOLER], plan, shown.append)

    figures = report.routes[Route.POOLER]
    assert figures.pool_exhausted
    assert figures.queries > 0
    assert figures.errors["max_client_conn"] > 0
    refused = [text for text in figures.exhaustion if "(max_client_conn)" in text]
    assert refused == [
        "pool exhausted: PgBouncer refused the client: no more connections allowed"
        f" (max_client_conn), {figures.errors['max_client_conn']} times"
    ]
    assert figures.cl_waiting_max is not None
    assert figures.cl_waiting_max > 0
    assert any(
        text.startswith("pool exhausted: ")
        and "waiting for a server connection (cl_waiting; longest" in text
        and "of 2 server connections busy" in text
        for text in figures.exhaustion
    )
    # Named, not counted as generic timeouts.
    assert [kind for kind in figures.errors if kind.endswith("_timeout")] in (
        [],
        ["query_wait_timeout"],
    )
    assert shown


def test_a_remote_database_is_not_loaded_without_a_terminal_to_ask_or_yes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = parse_config({"agent_id": "farm-east", "backend": {"direct_dsn": REMOTE_DSN}})

    code = run_loadtest_command(config, LoadRequest(route="direct"), interactive=False)

    shown = capsys.readouterr()
    assert code == 2
    assert "direct (192.0.2.10:5432) is not on this machine" in shown.err
    assert "opens 100 connections to each route in turn, for 60 s each" in shown.err
    assert "refusing to load a remote database without --yes" in shown.err
    assert TEST_SECRET not in shown.err + shown.out


def test_a_remote_database_is_loaded_only_after_a_yes_at_the_prompt(
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = parse_config({"agent_id": "farm-east", "backend": {"direct_dsn": REMOTE_DSN}})
    asked: list[str] = []

    def answer_no(prompt: str) -> str:
        asked.append(prompt)
        return "n\n"

    code = run_loadtest_command(config, LoadRequest(), ask=answer_no, interactive=True)

    assert code == 1
    assert asked == ["Continue? [y/N] "]
    assert "nothing done" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("request_", "named"),
    [
        (LoadRequest(clients=1001), "--clients: must be 1-1000 (got 1001)"),
        (LoadRequest(clients=0), "--clients: must be 1-1000 (got 0)"),
        (LoadRequest(duration_s=601), "--duration: must be more than 0 and at most 600 s"),
        (LoadRequest(query=" ; "), "--query: empty"),
    ],
)
def test_unbounded_or_empty_input_is_refused_naming_the_option(
    request_: LoadRequest, named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    config = parse_config({"agent_id": "farm-east", "backend": {"direct_dsn": CLOSED_DSN}})

    assert run_loadtest_command(config, request_) == 2
    assert named in capsys.readouterr().err


def test_a_route_that_is_not_configured_is_named(capsys: pytest.CaptureFixture[str]) -> None:
    config = parse_config({"agent_id": "farm-east", "backend": {"direct_dsn": CLOSED_DSN}})

    assert run_loadtest_command(config, LoadRequest(route="pooler")) == 2
    assert "--route pooler: backend.pooler_dsn is not set" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("query", "refusal"),
    [
        ("INSERT INTO public.loadtest_rows VALUES (2)", "read-only transaction"),
        ("COMMIT; DELETE FROM public.loadtest_rows", "multiple commands"),
        ("WITH gone AS (DELETE FROM public.loadtest_rows RETURNING 1) SELECT 1", "read-only"),
    ],
)
def test_a_query_that_writes_is_refused_by_the_server_before_any_load(
    query: str, refusal: str, postgres: Postgres, capsys: pytest.CaptureFixture[str]
) -> None:
    asyncio.run(_execute(postgres, "CREATE TABLE IF NOT EXISTS public.loadtest_rows (n int)"))
    asyncio.run(
        _execute(
            postgres, "TRUNCATE public.loadtest_rows; INSERT INTO public.loadtest_rows VALUES (1)"
        )
    )
    config = parse_config(
        {"agent_id": "farm-east", "backend": {"direct_dsn": with_secret(postgres.dsn)}}
    )

    code = run_loadtest_command(config, LoadRequest(clients=2, duration_s=1, query=query))

    shown = capsys.readouterr()
    assert code == 2
    assert "--query: the server refused it: " in shown.err
    assert refusal in shown.err
    assert shown.out == ""
    assert asyncio.run(_fetch(postgres, "SELECT array_agg(n) FROM public.loadtest_rows")) == [1]


def test_a_route_that_answers_nothing_exits_1_with_its_errors_counted(
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = parse_config({"agent_id": "farm-east", "backend": {"direct_dsn": CLOSED_DSN}})

    code = run_loadtest_command(config, LoadRequest(clients=5, duration_s=0.5, as_json=True))

    report = json.loads(capsys.readouterr().out)
    assert code == 1
    direct = report["routes"]["direct"]
    assert direct["queries"] == 0
    assert set(direct["errors"]) == {"refused"}
    assert direct["query_ms"] == {"p50": None, "p95": None, "p99": None}
    assert report["speedup"] is None


async def _execute(postgres: Postgres, sql: str) -> None:
    connection = await asyncpg.connect(postgres.dsn)
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


async def _fetch(postgres: Postgres, sql: str) -> Any:
    connection = await asyncpg.connect(postgres.dsn)
    try:
        return await connection.fetchval(sql)
    finally:
        await connection.close()
