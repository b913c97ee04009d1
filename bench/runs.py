"""One run of each kind against one relay: throughput, latency at a fixed rate, drain."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass

from rich.progress import Progress, TaskID

from bench.cpu import CpuMeter, add_others, find_processes
from bench.fleet import Fleet
from bench.measures import POLL_S, STALL_S, DrainRun, LatencyRun, percentile
from bench.processes import AgentProcess, RelayProcess
from bench.queue import QueueDatabase
from tools.services import Services


@dataclass(frozen=True, slots=True)
class Done:
    rows: int
    seconds: float
    cpu: dict[str, float]


class Runner:
    """One run of each kind against one relay."""

    def __init__(
        self, db: QueueDatabase, port: int, progress: Progress, services: Services
    ) -> None:
        self.db = db
        self.port = port
        self.progress = progress
        self.services = services

    def cpu_meter(self, relay: RelayProcess) -> CpuMeter:
        """CPU of the relay and of each service; PostgreSQL with all its backends."""
        root = str(self.services.root)
        postmaster = find_processes(f"{root}/pgdata")
        return CpuMeter(
            groups={
                relay.name: [relay.pid],
                "bench": [os.getpid()],
                "mosquitto": find_processes(f"mosquitto-{self.port}/mosquitto.conf"),
                "pgbouncer": find_processes(f"{root}/pgbouncer/pgbouncer.ini"),
            },
            trees={"postgres": postmaster[0]} if postmaster else {},
        )

    def _advance(self, task: TaskID | None, base: float) -> Callable[[int], None]:
        def update(count: int) -> None:
            if task is not None:
                self.progress.update(task, completed=base + count)

        return update

    def _completed(self, task: TaskID | None) -> float:
        return 0.0 if task is None else self.progress.tasks[task].completed

    def throughput(
        self, relay: RelayProcess, root: str, readings: int, task: TaskID | None
    ) -> Done:
        """`readings` from 100 devices flat out; seconds from first publish to last commit."""
        self.db.reset(relay.queue)
        base = self._completed(task)
        fleet = Fleet(self.port, root, readings)
        meter = self.cpu_meter(relay)
        try:
            meter.start()
            fleet.go()
            self.await_rows(relay, readings, self._advance(task, base))
            cpu = meter.stop()
            published = fleet.wait()
        finally:
            fleet.close()
        cpu = add_others(cpu, publishers=published.cpu_s)
        rows = self.settle(relay, readings)
        _, last_commit = self.db.commit_span(relay.queue)
        return Done(rows, last_commit - published.first, cpu)

    def latency(
        self,
        relay: RelayProcess,
        root: str,
        rate: int,
        *,
        seconds: float,
        task: TaskID | None = None,
        rss_samples: list[int] | None = None,
    ) -> LatencyRun:
        """Readings at a fixed rate; each one's publish-to-commit time."""
        readings = int(rate * seconds)
        self.db.reset(relay.queue)
        base = self._completed(task)
        fleet = Fleet(self.port, root, readings, rate)
        advance = self._advance(task, base)

        def watch(count: int) -> None:
            advance(count)
            if rss_samples is not None:
                rss_samples.append(relay.rss())

        meter = self.cpu_meter(relay)
        try:
            meter.start()
            fleet.go()
            self.await_rows(relay, readings, watch)
            cpu = meter.stop()
            published = fleet.wait()
        finally:
            fleet.close()
        cpu = add_others(cpu, publishers=published.cpu_s)
        self.settle(relay, readings)
        latencies = self.db.latencies(relay.queue)
        return LatencyRun(
            relay=relay.name,
            rate=rate,
            readings=readings,
            achieved_rate=readings / max(published.last - published.first, 1e-9),
            p50=percentile(latencies, 0.50),
            p95=percentile(latencies, 0.95),
            p99=percentile(latencies, 0.99),
            worst=max(latencies),
            cpu=cpu,
        )

    def drain(
        self,
        agent: AgentProcess,
        services: Services,
        db: QueueDatabase,
        readings: int,
        task: TaskID,
    ) -> DrainRun:
        """Database down while `readings` arrive (spooled); then up: how fast the spool drains."""
        db.reset(agent.queue)
        base = self._completed(task)
        db.disconnect()
        services.postgres.stop()
        try:
            fleet = Fleet(self.port, "bench/agent", readings)
            try:
                fleet.go()
                started = time.monotonic()
                depth = 0.0
                while depth < readings:
                    self._check_alive(agent)
                    time.sleep(POLL_S)
                    depth = agent.metric("farm_agent_spool_depth")
                    self.progress.update(task, completed=base + depth)
                    if time.monotonic() - started > STALL_S + readings / 1000:
                        raise RuntimeError(f"agent spooled only {depth:.0f} of {readings}")
                spool_seconds = time.monotonic() - started
                fleet.wait()
            finally:
                fleet.close()
        finally:
            services.postgres.start()
        back = time.time()
        self.await_rows(agent, readings, self._advance(task, base + readings))
        route = agent.route()
        self.settle(agent, readings)
        first_commit, last_commit = db.commit_span(agent.queue)
        return DrainRun(
            readings=readings,
            spool_seconds=spool_seconds,
            resume_seconds=first_commit - back,
            drain_seconds=last_commit - first_commit,
            route=route,
        )

    def _check_alive(self, relay: RelayProcess) -> None:
        if relay.process is None or relay.process.poll() is not None:
            raise RuntimeError(f"{relay.name} died; its log ends with:\n{relay.log_tail()}")

    def await_rows(self, relay: RelayProcess, expected: int, update: Callable[[int], None]) -> None:
        """Poll the queue until it holds `expected` rows; fail if the relay stalls or dies."""
        last_count, last_change = -1, time.monotonic()
        while True:
            count = self.db.count(relay.queue)
            update(count)
            if count >= expected:
                return
            now = time.monotonic()
            if count != last_count:
                last_count, last_change = count, now
            elif now - last_change > STALL_S:
                raise RuntimeError(f"{relay.name} stalled at {count} of {expected} rows")
            self._check_alive(relay)
            time.sleep(POLL_S)

    def settle(self, relay: RelayProcess, expected: int) -> int:
        """After the last row: no row more (a duplicate) may follow; returns the row count."""
        time.sleep(POLL_S * 2)
        rows = self.db.count(relay.queue)
        if rows != expected or self.db.distinct_keys(relay.queue) != expected:
            raise RuntimeError(f"{relay.name}: {rows} rows for {expected} readings")
        return rows
