"""The task worker's own cost: no-op tasks through `farm-agent work` vs a bare PGMQ loop.

`.venv/bin/python -m bench.tasks` (not part of `make bench` yet). Each run queues
TASKS no-op tasks, then drains them with either `farm-agent work` (its real
process, handler `bench.tasks:noop`) or a bare loop that does nothing but
`pgmq.read` and `pgmq.archive` the same number at a time as the worker's
concurrency. Throughput is counted on the database's clock, from the first archive
to the last; CPU is the draining process's user + system time over that span (its
start-up excluded), per task. Runs alternate, and the median of each is reported.
`BENCH_TASKS` and `BENCH_TASK_RUNS` change the numbers.
"""

from __future__ import annotations

import asyncio
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import yaml

from bench.cpu import process_seconds
from farm_agent.tasks import Task, submit_many, task_request
from tools.services import Services

TASKS = int(os.environ.get("BENCH_TASKS", "10000"))
RUNS = int(os.environ.get("BENCH_TASK_RUNS", "3"))
CONCURRENCY = int(os.environ.get("BENCH_TASK_CONCURRENCY", "16"))
QUEUE = "bench_tasks"
REPO = Path(__file__).resolve().parents[1]
BARE_LOOP = """
import asyncio, sys, asyncpg
async def main(dsn, queue, batch):
    connection = await asyncpg.connect(dsn)
    while True:
        rows = await connection.fetch("SELECT msg_id FROM pgmq.read($1::text, 30, $2::int)", queue, batch)
        if rows:
            await connection.fetch("SELECT pgmq.archive($1::text, $2::bigint[])", queue, [r[0] for r in rows])
        else:
            await asyncio.sleep(0.01)
asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
"""  # noqa: E501


async def noop(task: Task) -> None:
    """The benchmark's handler: nothing, so what is measured is the worker."""


@dataclass(frozen=True, slots=True)
class Drain:
    """One run: tasks per second and CPU microseconds per task of the draining process."""

    per_s: float
    cpu_us: float


async def queue_tasks(dsn: str) -> None:
    connection = await asyncpg.connect(dsn)
    try:
        for queue in (f"{QUEUE}_normal", f"{QUEUE}_high", f"{QUEUE}_low"):
            await connection.execute("SELECT pgmq.create($1::text)", queue)
            await connection.execute(f'TRUNCATE pgmq."q_{queue}", pgmq."a_{queue}"')
        for start in range(0, TASKS, 1000):
            count = min(1000, TASKS - start)
            await submit_many(
                connection, [task_request("noop", n) for n in range(count)], queue=QUEUE
            )
    finally:
        await connection.close()


async def drain(dsn: str, process: subprocess.Popen[bytes]) -> Drain:
    """Follow the archive until every task is in it; the process's CPU over that span."""
    connection = await asyncpg.connect(dsn)
    archive = f'pgmq."a_{QUEUE}_normal"'
    try:
        first_cpu = None
        while True:
            assert process.poll() is None, "the draining process exited"
            archived = await connection.fetchval(f"SELECT count(*) FROM {archive}")
            if archived and first_cpu is None:
                first_cpu, first_count = process_seconds(process.pid), archived
            if archived >= TASKS:
                break
            await asyncio.sleep(0.02)
        cpu_s = process_seconds(process.pid) - first_cpu
        span = await connection.fetchval(
            f"SELECT extract(epoch FROM max(archived_at) - min(archived_at))::float8 FROM {archive}"
        )
    finally:
        await connection.close()
    return Drain(per_s=(TASKS - 1) / span, cpu_us=cpu_s / (TASKS - first_count) * 1e6)


def worker_config(folder: Path, dsn: str) -> Path:
    path = folder / "bench-worker.yaml"
    document = {
        "agent_id": "bench",
        "backend": {"direct_dsn": dsn},
        "tasks": {
            "queue": QUEUE,
            "handlers": {"noop": "bench.tasks:noop"},
            "concurrency": CONCURRENCY,
            "listen": None,
        },
        "log_level": "warning",
    }
    path.write_text(yaml.safe_dump(document))
    return path


def run_once(dsn: str, command: list[str]) -> Drain:
    asyncio.run(queue_tasks(dsn))
    process = subprocess.Popen(command, cwd=REPO)
    try:
        return asyncio.run(drain(dsn, process))
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def main() -> int:
    services = Services()
    try:
        dsn = services.postgres.dsn
        with tempfile.TemporaryDirectory() as folder:
            worker = [sys.executable, "-m", "farm_agent", "work", "--config"]
            worker.append(str(worker_config(Path(folder), dsn)))
            bare = [sys.executable, "-c", BARE_LOOP, dsn, f"{QUEUE}_normal", str(CONCURRENCY)]
            results: dict[str, list[Drain]] = {"worker": [], "bare": []}
            for run in range(RUNS):
                for name, command in (("worker", worker), ("bare", bare)):
                    results[name].append(run_once(dsn, command))
                    found = results[name][-1]
                    print(
                        f"run {run + 1} {name}: {found.per_s:,.0f} tasks/s, "
                        f"{found.cpu_us:,.0f} CPU-us/task",
                        file=sys.stderr,
                    )
    finally:
        services.close()
    report(results)
    return 0


def report(results: dict[str, list[Drain]]) -> None:
    median = {
        name: Drain(
            statistics.median(d.per_s for d in drains), statistics.median(d.cpu_us for d in drains)
        )
        for name, drains in results.items()
    }
    started = time.strftime("%Y-%m-%d %H:%M")
    print(f"{TASKS:,} no-op tasks, concurrency {CONCURRENCY}, median of {RUNS} runs ({started})")
    for name, found in median.items():
        spread = ", ".join(f"{d.per_s:,.0f}" for d in results[name])
        print(
            f"  {name:6} {found.per_s:8,.0f} tasks/s ({spread})  {found.cpu_us:6,.0f} CPU-us/task"
        )
    print(f"  worker / bare loop: {median['worker'].per_s / median['bare'].per_s:.2f}x")


if __name__ == "__main__":
    sys.exit(main())
