"""The Supabase way: the schema comes from migrations, the agent runs as `farm_agent`.

A database of this module's own gets what a fresh Supabase project has (PGMQ, nothing
else), then supabase/migrations applied by the owner and a login role IN ROLE
farm_agent, as docs/supabase.md does it. The agent then relays, probes, looks into its
queues and works through its normal paths as that role, with `manage_schema: false`;
the same role is refused everything else.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from farm_agent.commands.cli import main
from farm_agent.commands.queue import QueueRequest, run_queue_command
from farm_agent.config_file import parse_config
from farm_agent.relay.marks import set_up_schema
from farm_agent.schema import MIGRATIONS, SchemaMissingError, default_queues, manages_schema
from farm_agent.schema.migrations import migration_text
from farm_agent.tasks import TaskHealth, read_task_figures
from farm_agent.tasks.submission import submit_configured, task_request
from tests.agent.support import running_worker
from tests.support.agent import REPO, AgentProcess, farm_agent, with_secret, write_config
from tests.support.mqtt import publisher
from tests.support.queues import queue_messages, send
from tests.support.waiting import wait_until
from tools.services import PgBouncer, Postgres, ServiceError, set_up_agent_role

ConfigMaker = Callable[..., dict[str, Any]]
MIGRATION = REPO / MIGRATIONS[-1].path
READING = {"v": 1, "key": "farm-east:0a1b:1", "agent_id": "farm-east",
           "topic": "farm/barn/temp", "payload": {"value": 20.5},
           "received_at": "2026-12-01T04:00:00.123Z"}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Project:
    """A database set up as docs/supabase.md says: its owner's DSN and the agent's two."""

    database: str
    owner_dsn: str
    login: str
    pooler_dsn: str
    direct_dsn: str


@pytest.fixture(scope="module")
def project(postgres: Postgres, pgbouncer: PgBouncer) -> Iterator[Project]:
    """A fresh database with PGMQ, the migration applied, and the agent's login role."""
    database = f"supabase_{uuid.uuid4().hex[:8]}"
    owner_dsn = postgres.create_database(database)
    login = set_up_agent_role(postgres, database)
    yield Project(
        database,
        owner_dsn,
        login,
        with_secret(pgbouncer.dsn_for(database, login)),
        with_secret(postgres.dsn_for(database, login)),
    )
    postgres.run_sql("postgres", f"DROP DATABASE {database} WITH (FORCE)")


@pytest.fixture
def agent_config(make_config: ConfigMaker, project: Project) -> Callable[..., dict[str, Any]]:
    """A config on the project as the agent's role: default queue names, no schema changes."""

    def make(**sections: Any) -> dict[str, Any]:
        sections = {
            "pooler_dsn": project.pooler_dsn,
            "direct_dsn": project.direct_dsn,
            "queue": "sensor_readings",
            **sections,
            "tasks": {"queue": "farm_tasks", **sections.get("tasks", {})},
        }
        config = make_config(**sections)
        config["backend"]["manage_schema"] = False
        return config

    return make


async def fetchval(dsn: str, query: str, *args: Any) -> Any:
    connection = await asyncpg.connect(dsn)
    try:
        return await connection.fetchval(query, *args)
    finally:
        await connection.close()


# The migration ----------------------------------------------------------------------


def test_each_migration_file_is_what_farm_agent_sql_prints_for_the_default_names(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FARM_AGENT_CONFIG", raising=False)
    files = sorted(path.name for path in (REPO / "supabase" / "migrations").glob("*.sql"))

    assert files == [migration.file_name for migration in MIGRATIONS]
    for migration in MIGRATIONS:
        written = (REPO / migration.path).read_text()
        assert written == migration_text(migration, default_queues()), (
            f"{migration.path} differs from farm_agent/schema: `python -m tools.write_migrations`"
            " writes it (to change an applied migration, add a new one instead)"
        )
    assert main(["sql"]) == 0
    assert capsys.readouterr().out == "\n".join(
        (REPO / migration.path).read_text() for migration in MIGRATIONS
    )


async def test_applying_the_migration_twice_changes_nothing_and_puts_nothing_in_public(
    postgres: Postgres, project: Project
) -> None:
    before = await catalog(project.owner_dsn)

    postgres.run_sql(project.database, MIGRATION.read_text())

    assert await catalog(project.owner_dsn) == before
    assert before["queues"] == sorted(default_queues().queues)
    assert before["public"] == []
    assert len(before["tables"]) == 4 + 2 * len(default_queues().queues)
    assert [name for name, _, secured, _ in before["tables"] if not secured] == []
    assert len(before["policies"]) == len(before["tables"])


async def catalog(dsn: str) -> dict[str, Any]:
    """What the migration makes: tables with their rights and row security, policies, queues."""
    connection = await asyncpg.connect(dsn)
    try:
        relations = await connection.fetch(
            """
            SELECT c.oid::regclass::text AS name, c.relkind::text AS kind, c.relrowsecurity,
                   c.relacl::text
            FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = 'farm_resilience' AND c.relkind = 'r'
               OR n.nspname = 'pgmq' AND c.relname ~ '^[qa]_' AND c.relkind IN ('r', 'S')
            ORDER BY 1
            """
        )
        policies = await connection.fetch(
            "SELECT schemaname, tablename, policyname, roles::text, qual, with_check"
            " FROM pg_policies ORDER BY 1, 2, 3"
        )
        queues = await connection.fetch("SELECT queue_name FROM pgmq.meta ORDER BY 1")
        public = await connection.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1"
        )
    finally:
        await connection.close()
    return {
        "tables": [tuple(row) for row in relations if row["kind"] == "r"],
        "sequences": [tuple(row) for row in relations if row["kind"] == "S"],
        "policies": [tuple(row) for row in policies],
        "queues": [row["queue_name"] for row in queues],
        "public": [row["tablename"] for row in public],
    }


# The agent as farm_agent --------------------------------------------------------------


async def test_agent_role_relays_through_the_pooler_and_check_finds_all_healthy(
    agent_config: Callable[..., dict[str, Any]],
    start_agent: Callable[..., AgentProcess],
    project: Project,
    mosquitto: Any,
    tmp_path: Path,
    test_id: str,
) -> None:
    config = agent_config()
    agent = start_agent(config)
    with publisher(mosquitto.port, f"{test_id}-pub") as farm:
        farm.publish_all([(f"{test_id}/field{n}/moisture", str(n)) for n in range(5)])

    relayed = await wait_until(
        lambda: _at_least(queue_messages(project.owner_dsn, "sensor_readings"), 5),
        "five readings in the queue",
    )
    checked = await farm_agent("check", "--json", "--config", str(agent.config_path))

    assert sorted(message["payload"] for message in relayed) == [0, 1, 2, 3, 4]
    assert agent.route() == "pooler"
    assert checked.returncode == 0, checked.stdout + checked.stderr
    health = json.loads(checked.stdout)
    assert health["status"] == "ok"
    assert {"database_pooler", "database_direct", "queue", "tasks"} <= {
        probe["name"] for probe in health["probes"] if probe["ok"]
    }
    assert "permission denied" not in agent.log()


async def _at_least(found: Any, count: int) -> list[Any]:
    messages: list[Any] = await found
    return messages if len(messages) >= count else []


# Plain tests (no event loop of theirs): the queue commands run their own, as on the command line.
def test_agent_role_looks_into_requeues_and_purges_dead_letters(
    agent_config: Callable[..., dict[str, Any]],
    project: Project,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = parse_config(agent_config())
    asyncio.run(send(project.owner_dsn, "sensor_readings_dlq", *_dead_letters(3)))

    # One requeued, then every one left purged (purge --limit would keep some).
    limits = {"stats": None, "peek": 1, "dlq list": 1, "dlq requeue": 1, "dlq purge": None}
    codes = {
        action: run_queue_command(config, QueueRequest(action, as_json=True, yes=True, limit=limit))
        for action, limit in limits.items()
    }

    assert codes == dict.fromkeys(codes, 0), capsys.readouterr().err
    assert (
        asyncio.run(fetchval(project.owner_dsn, "SELECT count(*) FROM pgmq.q_sensor_readings_dlq"))
        == 0
    )


def _dead_letters(count: int) -> list[dict[str, Any]]:
    return [{**READING, "key": f"farm-east:0a1b:{n}", "error": "bad"} for n in range(count)]


async def test_agent_role_worker_stores_readings_dead_letters_tasks_and_counts_them(
    agent_config: Callable[..., dict[str, Any]], project: Project, test_id: str
) -> None:
    sources = [{"queue": "sensor_readings", "type": "sensor_reading"}]
    config = parse_config(
        agent_config(tasks={"sources": sources, "poll_interval_s": 0.1, "heartbeat_s": 0.5})
    )
    reading = {**READING, "key": f"{test_id}:1", "topic": f"{test_id}/barn/temp"}
    await send(project.owner_dsn, "sensor_readings", reading)
    orphan = f"{test_id[:40]}.orphan"
    [task_id] = await submit_configured(config, [task_request(orphan, {"valve": 7})])

    async with running_worker(config):
        stored = await wait_until(
            lambda: fetchval(
                project.owner_dsn,
                "SELECT payload::text FROM farm_resilience.readings WHERE key = $1",
                reading["key"],
            ),
            "the reading stored",
        )
        [letter] = await wait_until(
            lambda: queue_messages(project.owner_dsn, "farm_tasks_dlq"), "a dead letter"
        )
        figures = await wait_until(
            lambda: _settled_figures(project.direct_dsn, config, orphan), "both tasks counted"
        )

    assert json.loads(stored) == {"value": 20.5}
    assert letter["id"] == task_id
    assert figures.by_type[orphan].dead_lettered == 1
    assert any(worker.alive for worker in figures.workers)


async def _settled_figures(dsn: str, config: Any, orphan: str) -> TaskHealth | None:
    """The task figures as the agent's role reads them, once both tasks are counted."""
    connection = await asyncpg.connect(dsn)
    try:
        figures = await read_task_figures(connection, config.tasks, 3600)
    finally:
        await connection.close()
    stored = figures.by_type.get("sensor_reading")
    counted = orphan in figures.by_type and stored is not None and stored.succeeded >= 1
    return figures if counted else None


# What the role may not do ---------------------------------------------------------------


@pytest.mark.parametrize(
    "statement",
    [
        "CREATE TABLE farm_resilience.stolen (data text)",
        "CREATE TABLE public.stolen (data text)",
        "CREATE SCHEMA stolen",
        "DROP TABLE farm_resilience.readings",
        "ALTER TABLE farm_resilience.relay_marks DISABLE ROW LEVEL SECURITY",
        "SELECT * FROM private.secrets",
        "SELECT payload FROM farm_resilience.readings",
        "SELECT pgmq.drop_queue('sensor_readings')",
        "SELECT pgmq.create('stolen')",
        "SELECT pgmq.purge_queue('sensor_readings')",
    ],
)
async def test_agent_role_is_refused_ddl_other_schemas_and_queue_administration(
    project: Project, postgres: Postgres, statement: str
) -> None:
    postgres.run_sql(
        project.database,
        "CREATE SCHEMA IF NOT EXISTS private;"
        " CREATE TABLE IF NOT EXISTS private.secrets (password text);",
    )
    connection = await asyncpg.connect(project.direct_dsn)
    try:
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await connection.execute(statement)
    finally:
        await connection.close()

    assert await fetchval(project.owner_dsn, "SELECT count(*) FROM pgmq.meta") == len(
        default_queues().queues
    )


async def test_readings_and_queues_stay_hidden_from_a_role_granted_select_without_a_policy(
    project: Project,
) -> None:
    """As if someone exposed the schemas to Supabase's REST API and granted `anon` SELECT."""
    connection = await asyncpg.connect(project.owner_dsn)
    try:
        await connection.execute(
            """
            DO $$ BEGIN CREATE ROLE web_anon NOLOGIN;
            EXCEPTION WHEN duplicate_object THEN NULL; END $$;
            GRANT USAGE ON SCHEMA farm_resilience, pgmq TO web_anon;
            GRANT SELECT ON farm_resilience.readings, pgmq.q_sensor_readings TO web_anon;
            INSERT INTO farm_resilience.readings (key, agent_id, topic, payload, received_at)
            VALUES ('hidden:1', 'farm-east', 'farm/barn/temp', '20.5', now())
            ON CONFLICT DO NOTHING;
            SELECT pgmq.send('sensor_readings', '{"secret": true}');
            """
        )
        async with connection.transaction():
            await connection.execute("SET LOCAL ROLE web_anon")
            seen_readings = await connection.fetchval(
                "SELECT count(*) FROM farm_resilience.readings"
            )
            seen_queued = await connection.fetchval("SELECT count(*) FROM pgmq.q_sensor_readings")
        owner_sees = await connection.fetchval("SELECT count(*) FROM farm_resilience.readings")
    finally:
        await connection.close()

    assert (seen_readings, seen_queued) == (0, 0)
    assert owner_sees >= 1


# When something is missing ------------------------------------------------------------------


async def test_without_manage_schema_a_missing_queue_is_named_with_the_migration_and_not_made(
    agent_config: Callable[..., dict[str, Any]],
    start_agent: Callable[..., AgentProcess],
    project: Project,
) -> None:
    document = agent_config(queue="greenhouse_readings")
    config = parse_config(document)

    for dsn in (project.direct_dsn, project.owner_dsn):  # not even the owner's makes it
        with pytest.raises(SchemaMissingError) as missing:
            await _set_up_relay(dsn, config)
        assert "queue greenhouse_readings is missing" in str(missing.value)
        assert MIGRATIONS[-1].path in str(missing.value)
        assert "farm-agent sql --config PATH" in str(missing.value)
    agent = start_agent(document, ready=False)
    await wait_until(lambda: "queue greenhouse_readings is missing" in agent.log(), "the report")

    assert not await fetchval(
        project.owner_dsn, "SELECT to_regclass('pgmq.q_greenhouse_readings') IS NOT NULL"
    )
    assert "readings stay in the spool" in agent.log()


async def _set_up_relay(dsn: str, config: Any) -> None:
    connection = await asyncpg.connect(dsn)
    try:
        await set_up_schema(connection, config)
    finally:
        await connection.close()


def test_the_sql_farm_agent_sql_prints_for_a_config_gives_the_role_its_queues(
    agent_config: Callable[..., dict[str, Any]],
    project: Project,
    postgres: Postgres,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    document = agent_config(queue="orchard_readings")
    path = write_config(tmp_path / "orchard.yaml", document)

    assert main(["sql", "--config", str(path)]) == 0
    postgres.run_sql(project.database, capsys.readouterr().out)

    asyncio.run(_set_up_relay(project.direct_dsn, parse_config(document)))
    asyncio.run(send(project.owner_dsn, "orchard_readings_dlq", *_dead_letters(1)))
    code = run_queue_command(parse_config(document), QueueRequest("dlq purge", yes=True))
    assert code == 0, capsys.readouterr().err


async def test_work_exits_1_naming_the_migration_when_its_task_queues_are_missing(
    agent_config: Callable[..., dict[str, Any]], tmp_path: Path
) -> None:
    path = write_config(tmp_path / "work.yaml", agent_config(tasks={"queue": "vineyard"}))

    result = await farm_agent("work", "--config", str(path))

    assert result.returncode == 1
    assert "queue vineyard_high is missing" in result.stderr
    assert MIGRATIONS[-1].path in result.stderr


async def test_agent_role_allowed_to_manage_the_schema_says_it_cannot_make_what_is_missing(
    agent_config: Callable[..., dict[str, Any]], project: Project
) -> None:
    document = agent_config(queue="pasture_readings")
    document["backend"]["manage_schema"] = True

    with pytest.raises(SchemaMissingError) as refused:
        await _set_up_relay(project.direct_dsn, parse_config(document))

    assert f"cannot set up the database as role {project.login}" in str(refused.value)
    assert "permission denied" in str(refused.value)
    assert MIGRATIONS[-1].path in str(refused.value)


async def test_without_pgmq_the_migration_stops_and_the_agent_says_so_older_pgmq_counts(
    agent_config: Callable[..., dict[str, Any]], postgres: Postgres
) -> None:
    database = f"bare_{uuid.uuid4().hex[:8]}"
    postgres.run_sql("postgres", f"CREATE DATABASE {database}")
    try:
        with pytest.raises(ServiceError, match="PGMQ is not available on this server"):
            postgres.run_sql(database, MIGRATION.read_text())
        config = parse_config(agent_config(direct_dsn=postgres.dsn_for(database), pooler_dsn=None))
        with pytest.raises(SchemaMissingError, match="PGMQ is not installed"):
            await _set_up_relay(postgres.dsn_for(database), config)
        # PGMQ before 1.5 (Supabase shipped 1.4) had send_batch(text, jsonb[], integer = 0).
        postgres.run_sql(
            database,
            "CREATE SCHEMA pgmq; CREATE FUNCTION pgmq.send_batch(text, jsonb[], integer = 0)"
            " RETURNS SETOF bigint LANGUAGE sql AS 'SELECT 1::bigint';",
        )
        with pytest.raises(SchemaMissingError) as missing:
            await _set_up_relay(postgres.dsn_for(database), config)
        assert "PGMQ" not in str(missing.value)
    finally:
        postgres.run_sql("postgres", f"DROP DATABASE {database} WITH (FORCE)")


@pytest.mark.parametrize(
    ("pooler", "direct", "setting", "manages"),
    [
        ("postgresql://u@127.0.0.1:6432/farm", "postgresql://u@localhost/farm", None, True),
        (None, "postgresql://u@[::1]:5432/farm", None, True),
        ("postgresql://u.ref@aws-0-eu.pooler.supabase.com:6543/postgres", None, None, False),
        ("postgresql://u@127.0.0.1:6432/farm", "postgresql://u@db.ref.supabase.co/x", None, False),
        ("postgresql://u.ref@aws-0-eu.pooler.supabase.com:6543/postgres", None, True, True),
        ("postgresql://u@127.0.0.1:6432/farm", None, False, False),
    ],
)
def test_manage_schema_defaults_to_on_only_when_every_database_host_is_this_machine(
    pooler: str | None, direct: str | None, setting: bool | None, manages: bool
) -> None:
    backend = {"pooler_dsn": pooler, "direct_dsn": direct, "manage_schema": setting}
    config = parse_config({"agent_id": "farm-east", "backend": backend})

    assert manages_schema(config.backend) is manages
