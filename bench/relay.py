"""The relay benchmarks: throughput, latency, drain after an outage, footprint.

Everything runs on throwaway services (PostgreSQL+PGMQ, PgBouncer, Mosquitto): the
agent as a real `farm_agent run` process and, alternated with it in the same run,
the bare baseline relay, both behind the same broker and the same pooler, each
with its own topics and queue.
"""

from __future__ import annotations

import os
import statistics
from pathlib import Path

from rich.progress import Progress

from bench import efficiency, profile
from bench.measures import (
    AGENT,
    BASELINE,
    RelayResults,
    RelaySettings,
    ThroughputRun,
)
from bench.processes import AgentProcess, BaselineProcess, RelayProcess
from bench.queue import QueueDatabase
from bench.runs import Runner
from tools.services import Services


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
            self.results.load_average = os.getloadavg()
            self._startup(relays)
            for relay in relays.values():
                relay.start_and_wait()
            self.results.idle = efficiency.measure_idle(
                relays, self.settings.idle_seconds, self.progress
            )
            bench = Runner(db, broker.port, self.progress, services)
            # Warm-up at a steady rate: no burst before the steady-state RSS is taken.
            for name, relay in relays.items():
                bench.latency(relay, roots[name], 1000, seconds=self.settings.warmup_seconds)
            self._latency(bench, relays, roots)
            self._throughput(bench, relays, roots)
            self._profile(bench, relays, roots)
            baseline.stop()
            self._drain(bench, agent, services, db)
            self._rss_after_bursts(bench, agent)
            self.results.one_core = efficiency.one_core(
                bench,
                agent,
                self.settings.one_core_rates,
                self.settings.latency_seconds,
                self.progress,
            )
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
        self, bench: Runner, relays: dict[str, RelayProcess], roots: dict[str, str]
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
        self, bench: Runner, relays: dict[str, RelayProcess], roots: dict[str, str]
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

    def _profile(
        self, bench: Runner, relays: dict[str, RelayProcess], roots: dict[str, str]
    ) -> None:
        """One more throughput run per relay under py-spy (not counted), if py-spy is there."""
        if profile.py_spy() is None:
            return
        readings = self.settings.throughput_readings
        task = self.progress.add_task(
            "profile (py-spy), one extra run each", total=len(relays) * readings
        )
        for name, relay in relays.items():
            raw = self.folder / f"{name}.profile"
            with profile.recording(relay.pid, raw):
                bench.throughput(relay, roots[name], readings, task)
            summary = profile.summarise(raw)
            if summary is not None:
                self.results.profiles[name] = summary

    def _rss_after_bursts(self, bench: Runner, agent: AgentProcess) -> None:
        seconds = self.settings.latency_seconds
        task = self.progress.add_task("agent RSS at 1,000/s after the bursts", total=1000 * seconds)
        samples: list[int] = []
        self.results.after_bursts = bench.latency(
            agent, "bench/agent", 1000, seconds=seconds, task=task, rss_samples=samples
        )
        self.results.rss_after_bursts = int(statistics.median(samples[len(samples) // 2 :]))
        self.results.agent_peak_rss = agent.peak_rss()

    def _drain(
        self, bench: Runner, agent: AgentProcess, services: Services, db: QueueDatabase
    ) -> None:
        readings = self.settings.drain_readings
        task = self.progress.add_task(
            f"drain after an outage, {readings:,} readings",
            total=self.settings.drain_runs * 2 * readings,
        )
        for _ in range(self.settings.drain_runs):
            self.results.drain.append(bench.drain(agent, services, db, readings, task))


def _alternate(names: list[str], run: int) -> list[str]:
    """The order of the relays in a run: swapped every other run, so drift hits both alike."""
    return names if run % 2 == 0 else names[::-1]
