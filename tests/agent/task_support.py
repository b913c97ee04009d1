"""Helpers of the task tests: a tasks config, a worker in-process or as a process, the queues."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
from prometheus_client.parser import text_string_to_metric_families

from farm_agent.config import AgentConfig, parse_config
from farm_agent.tasks.handlers import load_handlers
from farm_agent.tasks.worker import Worker
from tests.agent.support import REPO, AgentProcess, queue_messages
from tests.agent.task_handlers import CREATE_RUNS

HANDLERS = "tests.agent.task_handlers"
T = TypeVar("T")


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


def agent_config_of(document: dict[str, Any]) -> AgentConfig:
    return parse_config(document)


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


async def wait_until(
    check: Callable[[], Awaitable[T]], what: str, timeout: float = 30, every: float = 0.1
) -> T:
    """Poll `check` until it returns something truthy; fail naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        found = await check()
        if found:
            return found
        assert time.monotonic() < deadline, f"not within {timeout} s: {what} (last: {found!r})"
        await asyncio.sleep(every)


async def create_runs_table(dsn: str) -> None:
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute("SELECT pg_advisory_lock(4242)")
        await connection.execute(CREATE_RUNS)
    finally:
        await connection.close()


async def query_rows(dsn: str, query: str, *args: Any) -> list[asyncpg.Record]:
    connection = await asyncpg.connect(dsn)
    try:
        return list(await connection.fetch(query, *args))
    finally:
        await connection.close()


async def runs_of(dsn: str, *task_types: str) -> list[asyncpg.Record]:
    """Every run the handlers noted for these task types, in the order they happened."""
    return await query_rows(
        dsn,
        "SELECT * FROM public.task_test_runs WHERE type = ANY($1::text[]) ORDER BY at",
        list(task_types),
    )


async def queue_rows(dsn: str, queue: str, table: str = "q") -> list[dict[str, Any]]:
    """A queue's rows (or its archive's, table="a"), message parsed, oldest first."""
    rows = await query_rows(dsn, f'SELECT * FROM pgmq."{table}_{queue}" ORDER BY msg_id')
    return [{**dict(row), "message": json.loads(row["message"])} for row in rows]


async def dead_letters(dsn: str, queue: str) -> list[dict[str, Any]]:
    return await queue_messages(dsn, queue)


async def send_raw(dsn: str, queue: str, *messages: Any) -> None:
    """Put messages on a queue as they are (not necessarily task envelopes)."""
    await send_texts(dsn, queue, *(json.dumps(message) for message in messages))


async def send_texts(dsn: str, queue: str, *texts: str) -> None:
    """Put messages given as JSON text on a queue, digits and all."""
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute("SELECT pgmq.create($1::text)", queue)
        for text in texts:
            await connection.execute("SELECT pgmq.send($1::text, $2::text::jsonb)", queue, text)
    finally:
        await connection.close()


def sample(page: str, name: str, **labels: str) -> float | None:
    """The value of one sample of a Prometheus page, labels in any order; None if absent."""
    for family in text_string_to_metric_families(page):
        for found in family.samples:
            if found.name == name and found.labels == labels:
                return float(found.value)
    return None


class WorkerProcess(AgentProcess):
    """`farm-agent work` as a real process, so a test can SIGTERM or SIGKILL it."""

    def start(self, extra_env: dict[str, str] | None = None) -> None:
        assert self.process is None or self.process.poll() is not None, "already running"
        self.starts += 1
        with self.log_path.open("ab") as log:
            log.write(f"--- start {self.starts}\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                [sys.executable, "-m", "farm_agent", "work", "--config", str(self.config_path)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**self.env, **(extra_env or {})},
                cwd=REPO,
            )

    def wait_taking_tasks(self, timeout: float = 20) -> None:
        """Until the log says the worker reads its queues."""
        deadline = time.monotonic() + timeout
        marker = f"--- start {self.starts}"
        while time.monotonic() < deadline:
            text = self.log().split(marker)[-1]
            if "taking tasks from" in text:
                return
            assert self.running, f"worker exited early:\n{text[-3000:]}"
            time.sleep(0.05)
        raise AssertionError(f"worker not taking tasks after {timeout} s:\n{self.log()[-3000:]}")


def worker_process(path: Path) -> WorkerProcess:
    return WorkerProcess(path)
