"""Helpers of the agent's tests: parts of the agent run in-process, and what they need.

What every test folder shares (the agent's process and config, MQTT devices, the
queues) is in tests/support; the fixtures are in conftest.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import sqlite3
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
from aiohttp import web

from farm_agent.config import AgentConfig
from farm_agent.health.judging import Health, assess, first_reachable_route
from farm_agent.health.probes import ProbeKind, Prober, ProbeResult, ProbeRound
from farm_agent.histogram import bucket_of
from farm_agent.mqtt import MqttLink
from farm_agent.relay import idle_snapshot
from farm_agent.schema.objects import TASK_TABLES
from farm_agent.tasks.handlers import load_handlers
from farm_agent.tasks.worker import Worker
from tests.agent.task_handlers import CREATE_RUNS
from tests.support.agent import AgentProcess
from tests.support.metrics import metric_values
from tests.support.queues import query_rows
from tests.support.waiting import wait_until

HANDLERS = "tests.agent.task_handlers"
ETAG = '"v1-farm"'
# What the test endpoint's /huge streams.
HUGE_BODY_BYTES = 512 * 1024 * 1024


async def wait_for_metric(
    agent: AgentProcess, sample: str, at_least: float, timeout: float = 20
) -> dict[str, float]:
    """Poll the agent's /metrics until `sample` reaches `at_least`; returns every sample then."""

    async def reached() -> dict[str, float] | None:
        values = metric_values(await asyncio.to_thread(agent.metrics))
        return values if values.get(sample, -1) >= at_least else None

    found: dict[str, float] = await wait_until(reached, f"{sample} >= {at_least}", timeout)
    return found


def fill(disk: Path) -> Path:
    """Write a ballast file until the disk (`small_disk`) has not a byte left."""
    ballast = disk / "ballast"
    with ballast.open("wb", buffering=0) as out:
        for chunk in (1 << 20, 4096, 1):
            with contextlib.suppress(OSError):
                while True:
                    out.write(b"\0" * chunk)
    return ballast


# The probes and the judging in the test's own process ---------------------------


@contextlib.asynccontextmanager
async def running_prober(config: AgentConfig) -> AsyncIterator[Prober]:
    """A Prober on an MQTT link of its own, as `farm-agent check` builds it."""
    mqtt = dataclasses.replace(config.mqtt, client_id=f"{config.mqtt.client_id}-test")
    link = MqttLink(mqtt, asyncio.get_running_loop())
    prober = Prober(config, link)
    link.start()
    try:
        yield prober
    finally:
        await prober.close()
        await link.stop()


def judge(config: AgentConfig, found: ProbeRound) -> Health:
    """The health the agent would publish for this round, with an idle relay."""
    relay = idle_snapshot(first_reachable_route(config, found), config.spool.path)
    return assess(config, found, relay, time.time())


def healthy_round() -> ProbeRound:
    """A probe round in which the only route, the pooler, answered (as plain data)."""
    pooler = ProbeResult("database_pooler", ProbeKind.POSTGRES, True, 1.5, "SELECT 1 in 1.50 ms")
    return ProbeRound((pooler,), None, None, (pooler,), broker_connected=True)


def result_named(found: ProbeRound, name: str) -> ProbeResult:
    return next(result for result in found.results if result.name == name)


class CacheStatus:
    """Answers with `CF-Cache-Status` values given in order, to test the hit ratio."""

    def __init__(self) -> None:
        self.statuses: list[str] = []

    async def answer(self, request: web.Request) -> web.Response:
        status = self.statuses.pop(0) if self.statuses else "HIT"
        return web.json_response({"ok": True}, headers={"CF-Cache-Status": status})


@dataclass
class Endpoint:
    """The `endpoint` fixture's HTTP server: one route per behaviour the HTTP probe must see."""

    base: str
    cdn: CacheStatus

    def url(self, path: str) -> str:
        return f"{self.base}{path}"


# Tasks --------------------------------------------------------------------------


def task_type(test_id: str, name: str) -> str:
    """A task type of this test's own, so the shared figures tables keep tests apart."""
    return f"{test_id[:40]}.{name}"


def tasks_section(test_id: str, handlers: dict[str, str], **overrides: Any) -> dict[str, Any]:
    """A `tasks:` section for quick tests: its own queues, short leases, backoffs and beats."""
    section: dict[str, Any] = {
        "queue": f"{test_id[:33]}_tk",
        "handlers": {name: f"{HANDLERS}:{function}" for name, function in handlers.items()},
        "max_attempts": 3,
        "visibility_timeout_s": 3,
        "backoff": {"base_s": 1, "max_s": 1},
        "concurrency": 4,
        "poll_interval_s": 0.1,
        "heartbeat_s": 0.5,
        "drain_s": 10,
        "listen": "127.0.0.1:0",
    }
    section.update(overrides)
    return section


@contextlib.asynccontextmanager
async def running_worker(
    config: AgentConfig, worker_id: str | None = None
) -> AsyncIterator[Worker]:
    """A worker running in this event loop; stopped (and drained) when the block ends."""
    worker = Worker(config, load_handlers(config.tasks.handlers), worker_id=worker_id)
    stop = asyncio.Event()
    running = asyncio.create_task(worker.run(stop))
    try:
        yield worker
    finally:
        stop.set()
        await asyncio.wait_for(running, 30)


async def forget_task_figures(dsn: str) -> None:
    """Empty the task figures and heartbeats (the tables exist once a worker ran)."""
    connection = await asyncpg.connect(dsn)
    try:
        if await connection.fetchval("SELECT to_regclass('farm_resilience.task_workers')"):
            await connection.execute(
                "DELETE FROM farm_resilience.task_minutes; DELETE FROM farm_resilience.task_workers"
            )
    finally:
        await connection.close()


async def add_task_minute(
    dsn: str,
    minutes_ago: int,
    task_type: str,
    dead_lettered: int = 0,
    **succeeded_in_s: int,
) -> None:
    """A row of the figures as a worker writes it: `s1=30` is 30 tasks done in 1 s."""
    latencies = {float(key[1:].replace("_", ".")): count for key, count in succeeded_in_s.items()}
    histogram: dict[str, int] = {}
    for seconds, count in latencies.items():
        bucket = str(bucket_of(seconds))
        histogram[bucket] = histogram.get(bucket, 0) + count
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute(
            "INSERT INTO farm_resilience.task_minutes"
            " (minute, type, succeeded, dead_lettered, total_histogram)"
            " VALUES (date_trunc('minute', now()) - make_interval(mins => $1), $2, $3, $4, $5)",
            minutes_ago,
            task_type,
            sum(latencies.values()),
            dead_lettered,
            json.dumps(histogram),
        )
    finally:
        await connection.close()


async def set_up_task_figures(dsn: str) -> None:
    """The task figures' tables, as a worker creates them (the `figures_database` has none)."""
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute("CREATE SCHEMA IF NOT EXISTS farm_resilience" + ";" + TASK_TABLES)
    finally:
        await connection.close()


async def create_runs_table(dsn: str) -> None:
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute("SELECT pg_advisory_lock(4242)")
        await connection.execute(CREATE_RUNS)
    finally:
        await connection.close()


async def runs_of(dsn: str, *task_types: str) -> list[asyncpg.Record]:
    """Every run the handlers noted for these task types, in the order they happened."""
    return await query_rows(
        dsn,
        "SELECT * FROM public.task_test_runs WHERE type = ANY($1::text[]) ORDER BY at",
        list(task_types),
    )


# The spool ----------------------------------------------------------------------


def write_version_1_spool(path: Path, spool_id: str, payloads: list[bytes]) -> None:
    """A spool file exactly as version 1 of the agent wrote it."""
    with sqlite3.connect(path) as db:
        db.executescript(
            """
            PRAGMA journal_mode=WAL;
            CREATE TABLE spool_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
            CREATE TABLE readings (
                seq INTEGER PRIMARY KEY AUTOINCREMENT,
                topic TEXT NOT NULL,
                payload BLOB NOT NULL,
                received_at REAL NOT NULL
            );
            CREATE TABLE delivered (
                mid INTEGER PRIMARY KEY, digest BLOB NOT NULL, n INTEGER NOT NULL
            );
            """
        )
        db.execute("INSERT INTO spool_meta VALUES ('spool_id', ?), ('schema', '1')", (spool_id,))
        db.executemany(
            "INSERT INTO readings (topic, payload, received_at)"
            " VALUES ('farm/f1/t', ?, 1795665600)",
            [(payload,) for payload in payloads],
        )
    db.close()
