"""The task worker's own cost: no-op tasks through `farm-agent work` vs a bare PGMQ loop.

Part of `make bench`. Alone, `.venv/bin/python -m bench.tasks` measures just this and
writes its summary row and section into RESULTS.md (BENCH_QUICK and BENCH_RESULTS as
for `make bench`), leaving the rest of the file as the last full run wrote it.

Each run queues the tasks, then drains them with either `farm-agent work` (its real
process, handler `bench.tasks:noop`) or a bare loop that does nothing but `pgmq.read`
and `pgmq.archive` the same number at a time as the worker's concurrency, on one
connection. Throughput is counted on the database's clock, from the first archive to
the last; CPU is the draining process's user + system time over that span (its
start-up excluded) and PostgreSQL's (every backend), per task. Runs alternate, the
worker first.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import yaml
from rich.progress import Progress, TaskID

from bench import machine, settings
from bench.cpu import CpuMeter, add_others, find_processes, others_share
from bench.layout import REPO, byte_compile
from bench.settings import TaskSettings
from farm_agent.tasks import Task, submit_many, task_request
from tools.services import Services

QUEUE = "bench_tasks"
WORKER, BARE = "worker", "bare"
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
    """One run: tasks per second, CPU per task of the draining process and of PostgreSQL."""

    per_s: float
    cpu_s: float
    postgres_s: float
    # The share of the machine (all cores) other processes took meanwhile.
    others: float


@dataclass
class TaskResults:
    """Every run of both drainers, in the order they ran."""

    settings: TaskSettings
    runs: dict[str, list[Drain]] = field(default_factory=lambda: {WORKER: [], BARE: []})
    load_average: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def ratios(self) -> list[float]:
        """Run by run: the worker's throughput over the bare loop's next to it."""
        return [
            worker.per_s / bare.per_s
            for worker, bare in zip(self.runs[WORKER], self.runs[BARE], strict=True)
        ]


class TaskBench:
    """Runs the task benchmark on its own services; `run()` returns the measurements."""

    def __init__(self, settings: TaskSettings, progress: Progress | None = None) -> None:
        self.settings = settings
        self.progress = progress

    def run(self) -> TaskResults:
        results = TaskResults(self.settings)
        services = Services()
        try:
            with tempfile.TemporaryDirectory(prefix="farm-bench-tasks-") as folder:
                commands = self._commands(services.postgres.dsn, Path(folder))
                results.load_average = os.getloadavg()
                task = self._task(f"task worker and bare loop, {self.settings.tasks:,} tasks each")
                for run in range(self.settings.runs):
                    for name in (WORKER, BARE):
                        found = self._run_once(services, commands[name])
                        results.runs[name].append(found)
                        self._advance(task)
                        _say(
                            f"run {run + 1} {name}: {found.per_s:,.0f} tasks/s, "
                            f"{found.cpu_s * 1e6:,.0f} CPU-µs/task, "
                            f"PostgreSQL {found.postgres_s * 1e6:,.0f} µs/task"
                        )
        finally:
            services.close()
        return results

    def _commands(self, dsn: str, folder: Path) -> dict[str, list[str]]:
        worker = [sys.executable, "-m", "farm_agent", "work", "--config"]
        worker.append(str(self._worker_config(folder, dsn)))
        concurrency = str(self.settings.concurrency)
        bare = [sys.executable, "-c", BARE_LOOP, dsn, f"{QUEUE}_normal", concurrency]
        return {WORKER: worker, BARE: bare}

    def _worker_config(self, folder: Path, dsn: str) -> Path:
        path = folder / "bench-worker.yaml"
        document = {
            "agent_id": "bench",
            "backend": {"direct_dsn": dsn},
            "tasks": {
                "queue": QUEUE,
                "handlers": {"noop": "bench.tasks:noop"},
                "concurrency": self.settings.concurrency,
                "listen": None,
            },
            "log_level": "warning",
        }
        path.write_text(yaml.safe_dump(document))
        return path

    def _run_once(self, services: Services, command: list[str]) -> Drain:
        dsn = services.postgres.dsn
        asyncio.run(_queue_tasks(dsn, self.settings.tasks))
        postmaster = find_processes(f"{services.root}/pgdata")
        process = subprocess.Popen(command, cwd=REPO)
        try:
            meter = CpuMeter(
                groups={"drainer": [process.pid]},
                trees={"postgres": postmaster[0]} if postmaster else {},
            )
            return asyncio.run(_drain(dsn, process, meter, self.settings.tasks))
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def _task(self, description: str) -> TaskID | None:
        if self.progress is None:
            return None
        return self.progress.add_task(description, total=2 * self.settings.runs)

    def _advance(self, task: TaskID | None) -> None:
        if self.progress is not None and task is not None:
            self.progress.advance(task)


async def _queue_tasks(dsn: str, count: int) -> None:
    connection = await asyncpg.connect(dsn)
    try:
        for queue in (f"{QUEUE}_normal", f"{QUEUE}_high", f"{QUEUE}_low"):
            await connection.execute("SELECT pgmq.create($1::text)", queue)
            await connection.execute(f'TRUNCATE pgmq."q_{queue}", pgmq."a_{queue}"')
        for start in range(0, count, 1000):
            requests = [task_request("noop", n) for n in range(min(1000, count - start))]
            await submit_many(connection, requests, queue=QUEUE)
    finally:
        await connection.close()


async def _drain(dsn: str, process: subprocess.Popen[bytes], meter: CpuMeter, count: int) -> Drain:
    """Follow the archive until every task is in it; the CPU used over that span."""
    connection = await asyncpg.connect(dsn)
    archive = f'pgmq."a_{QUEUE}_normal"'
    first = 0
    try:
        while True:
            assert process.poll() is None, "the draining process exited"
            archived = await connection.fetchval(f"SELECT count(*) FROM {archive}")
            if archived and not first:
                first = archived
                meter.start()
            if archived >= count:
                break
            await asyncio.sleep(0.02)
        used = add_others(meter.stop())
        span = await connection.fetchval(
            f"SELECT extract(epoch FROM max(archived_at) - min(archived_at))::float8 FROM {archive}"
        )
    finally:
        await connection.close()
    drained = count - first
    return Drain(
        per_s=(count - 1) / span,
        cpu_s=used["drainer"] / drained,
        postgres_s=used.get("postgres", 0.0) / drained,
        others=others_share(used),
    )


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def main() -> int:
    """Measure the task worker alone and put its figures into the results file."""
    from bench import report  # noqa: PLC0415 - report imports this module

    config = settings.load()
    byte_compile()
    started = time.monotonic()
    stamp = machine.stamp()
    results = TaskBench(config.tasks).run()
    path = Path(config.output)
    rows, section = report.task_parts(results, measured_alone=stamp)
    text = path.read_text() if path.exists() else ""
    path.write_text(report.with_task_parts(text, rows, section))
    print(section)
    print(f"written to {path} in {time.monotonic() - started:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
