"""The relay benchmarks: throughput, latency, drain after an outage, footprint.

Everything runs on throwaway services (PostgreSQL+PGMQ, PgBouncer, Mosquitto): the
agent as a real `farm_agent run` process and, alternated with it in the same run,
the bare baseline relay, both behind the same broker and the same pooler, each
with its own topics and queue.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from rich.progress import Progress, TaskID

from bench.cpu import CpuMeter, find_processes
from bench.fleet import Fleet
from bench.processes import AgentProcess, BaselineProcess, RelayProcess
from bench.queue import QueueDatabase
from tools.services import Services

AGENT = "agent"
BASELINE = "baseline"
POLL_S = 0.25
# A relay that has not moved for this long is stuck: the run fails rather than hangs.
STALL_S = 120.0


@dataclass(frozen=True, slots=True)
class RelaySettings:
    runs: int
    throughput_readings: int
    latency_rates: tuple[int, ...]
    latency_seconds: float
    drain_readings: int
    startup_runs: int
    warmup_readings: int


@dataclass(frozen=True, slots=True)
class ThroughputRun:
    relay: str
    readings: int
    rows: int
    seconds: float
    # CPU seconds per part (relay, postgres, pgbouncer, mosquitto, publishers) and
    # `machine_busy`, the share of both cores in use, from first publish to last row.
    cpu: dict[str, float]

    @property
    def rate(self) -> float:
        return self.readings / self.seconds


@dataclass(frozen=True, slots=True)
class LatencyRun:
    relay: str
    rate: int
    readings: int
    achieved_rate: float
    p50: float
    p95: float
    p99: float
    worst: float


@dataclass(frozen=True, slots=True)
class DrainRun:
    readings: int
    spool_seconds: float
    resume_seconds: float
    drain_seconds: float
    route: str

    @property
    def rate(self) -> float:
        return self.readings / self.drain_seconds


@dataclass
class RelayResults:
    startup_s: dict[str, list[float]] = field(default_factory=dict)
    throughput: list[ThroughputRun] = field(default_factory=list)
    latency: list[LatencyRun] = field(default_factory=list)
    steady_rss: dict[str, list[int]] = field(default_factory=dict)
    drain: list[DrainRun] = field(default_factory=list)
    agent_peak_rss: int = 0
    batch_size: int = 0
    batch_interval_ms: int = 0
    postgres_version: str = ""


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (the ceil(q·n)-th smallest value)."""
    ordered = sorted(values)
    rank = max(1, -(-int(q * 1000) * len(ordered) // 1000))
    return ordered[min(rank, len(ordered)) - 1]


class RelayBench:
    """Runs the relay benchmarks on its own services; `run()` returns the measurements."""

    def __init__(self, settings: RelaySettings, progress: Progress, folder: Path) -> None:
        self.settings = settings
        self.progress = progress
        self.folder = folder
        self.results = RelayResults()

    def run(self) -> RelayResults:
        services = Services()
        db: QueueDatabase | None = None
        agent: AgentProcess | None = None
        baseline: BaselineProcess | None = None
        try:
            task = self.progress.add_task("starting services", total=None)
            db = self._set_up_database(services)
            broker = services.mosquitto()
            self.progress.update(task, total=1, completed=1)
            agent = AgentProcess(
                self.folder,
                mqtt_port=broker.port,
                pooler_dsn=services.pgbouncer.dsn,
                direct_dsn=services.postgres.dsn,
                queue="bench_agent",
                topic="bench/agent/#",
            )
            self.results.batch_size = agent.batch_size
            self.results.batch_interval_ms = agent.batch_interval_ms
            baseline = BaselineProcess(
                self.folder,
                mqtt_port=broker.port,
                dsn=services.pgbouncer.dsn,
                queue="bench_baseline",
                topic="bench/baseline/#",
                batch_size=agent.batch_size,
                batch_interval_ms=agent.batch_interval_ms,
                receive_maximum=agent.receive_maximum,
            )
            db.create_queue(baseline.queue)
            relays: dict[str, RelayProcess] = {AGENT: agent, BASELINE: baseline}
            roots = {AGENT: "bench/agent", BASELINE: "bench/baseline"}
            self._startup(relays)
            for relay in relays.values():
                relay.start_and_wait()
            bench = _Runner(db, broker.port, self.progress, services)
            for name, relay in relays.items():
                bench.throughput(relay, roots[name], self.settings.warmup_readings, None)
            self._throughput(bench, relays, roots)
            self._latency(bench, relays, roots)
            baseline.stop()
            self._drain(bench, agent, services, db)
            self.results.agent_peak_rss = agent.peak_rss()
            return self.results
        finally:
            for process in (agent, baseline):
                if process is not None:
                    process.stop()
            if db is not None:
                db.close()
            services.close()

    def _set_up_database(self, services: Services) -> QueueDatabase:
        db = QueueDatabase(services.postgres.dsn)
        if db.track_commit_timestamps():
            db.disconnect()
            services.postgres.restart()
        self.results.postgres_version = db.server_version()
        return db

    def _startup(self, relays: dict[str, RelayProcess]) -> None:
        runs = self.settings.startup_runs
        task = self.progress.add_task("start-up time to ready", total=runs * len(relays))
        for relay in relays.values():
            # The first start creates the queues and the spool; it is not counted.
            relay.start_and_wait()
            relay.stop()
        for run in range(runs):
            for name in _alternate(list(relays), run):
                self.results.startup_s.setdefault(name, []).append(relays[name].start_and_wait())
                relays[name].stop()
                self.progress.advance(task)

    def _throughput(
        self, bench: _Runner, relays: dict[str, RelayProcess], roots: dict[str, str]
    ) -> None:
        readings = self.settings.throughput_readings
        task = self.progress.add_task(
            f"throughput, {readings:,} readings", total=self.settings.runs * 2 * readings
        )
        for run in range(self.settings.runs):
            for name in _alternate([AGENT, BASELINE], run):
                result = bench.throughput(relays[name], roots[name], readings, task)
                self.results.throughput.append(
                    ThroughputRun(name, readings, result.rows, result.seconds, result.cpu)
                )

    def _latency(
        self, bench: _Runner, relays: dict[str, RelayProcess], roots: dict[str, str]
    ) -> None:
        settings = self.settings
        total = sum(int(rate * settings.latency_seconds) for rate in settings.latency_rates)
        task = self.progress.add_task(
            f"latency at {', '.join(f'{r:,}' for r in settings.latency_rates)}/s",
            total=settings.runs * 2 * total,
        )
        steady_rate = sorted(settings.latency_rates, key=lambda rate: abs(rate - 1000))[0]
        for rate in settings.latency_rates:
            for run in range(settings.runs):
                for name in _alternate([AGENT, BASELINE], run):
                    relay = relays[name]
                    samples: list[int] | None = [] if rate == steady_rate else None
                    self.results.latency.append(
                        bench.latency(
                            relay,
                            roots[name],
                            rate,
                            seconds=settings.latency_seconds,
                            task=task,
                            rss_samples=samples,
                        )
                    )
                    if samples:
                        # Steady state: the second half of the run, after any warm-up.
                        steady = samples[len(samples) // 2 :]
                        self.results.steady_rss.setdefault(name, []).append(
                            int(statistics.median(steady))
                        )

    def _drain(
        self, bench: _Runner, agent: AgentProcess, services: Services, db: QueueDatabase
    ) -> None:
        readings = self.settings.drain_readings
        task = self.progress.add_task(
            f"drain after an outage, {readings:,} readings",
            total=self.settings.runs * 2 * readings,
        )
        for _ in range(self.settings.runs):
            self.results.drain.append(bench.drain(agent, services, db, readings, task))


@dataclass(frozen=True, slots=True)
class _Done:
    rows: int
    seconds: float
    cpu: dict[str, float]


class _Runner:
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
    ) -> _Done:
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
        cpu["publishers"] = published.cpu_s
        rows = self.settle(relay, readings)
        _, last_commit = self.db.commit_span(relay.queue)
        return _Done(rows, last_commit - published.first, cpu)

    def latency(
        self,
        relay: RelayProcess,
        root: str,
        rate: int,
        *,
        seconds: float,
        task: TaskID,
        rss_samples: list[int] | None,
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

        try:
            fleet.go()
            self.await_rows(relay, readings, watch)
            published = fleet.wait()
        finally:
            fleet.close()
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


def _alternate(names: list[str], run: int) -> list[str]:
    """The order of the relays in a run: swapped every other run, so drift hits both alike."""
    return names if run % 2 == 0 else names[::-1]
