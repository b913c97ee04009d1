"""How big each benchmark is: the full run (`make bench`) or the smoke run (`BENCH_QUICK=1`)."""

from __future__ import annotations

import os
from dataclasses import dataclass

from bench.layout import BENCH
from bench.measures import RelaySettings


@dataclass(frozen=True, slots=True)
class HaSettings:
    runs: int
    entities: int
    writes: int
    commands: int
    memory_runs: int
    memory_entities: int
    memory_outcomes: int
    stale_runs: int
    stale_sensors: int


@dataclass(frozen=True, slots=True)
class TaskSettings:
    """No-op tasks through the worker and the bare loop, `runs` times each."""

    tasks: int
    runs: int
    concurrency: int


@dataclass(frozen=True, slots=True)
class Settings:
    quick: bool
    relay: RelaySettings
    ha: HaSettings
    tasks: TaskSettings
    output: str


def load() -> Settings:
    quick = os.environ.get("BENCH_QUICK", "") not in ("", "0")
    if quick:
        relay = RelaySettings(
            runs=3,
            throughput_readings=10_000,
            latency_rates=(100, 1_000, 5_000),
            latency_seconds=1.5,
            drain_readings=10_000,
            drain_runs=1,
            startup_runs=2,
            warmup_seconds=1.0,
            idle_seconds=30.0,
            one_core_rates=(1_000, 5_000),
        )
        ha = HaSettings(
            runs=3,
            entities=1_000,
            writes=10_000,
            commands=1_000,
            memory_runs=1,
            memory_entities=10_000,
            memory_outcomes=1_000_000,
            stale_runs=2,
            stale_sensors=2_000,
        )
        tasks = TaskSettings(tasks=2_000, runs=2, concurrency=16)
    else:
        relay = RelaySettings(
            runs=3,
            throughput_readings=100_000,
            latency_rates=(100, 1_000, 5_000),
            latency_seconds=10.0,
            drain_readings=200_000,
            drain_runs=3,
            startup_runs=5,
            warmup_seconds=5.0,
            idle_seconds=300.0,
            one_core_rates=(1_000, 2_000, 5_000, 10_000),
        )
        # Twelve runs: each of the six orders twice; single runs vary by ±8 %.
        ha = HaSettings(
            runs=12,
            entities=1_000,
            writes=100_000,
            commands=5_000,
            memory_runs=3,
            memory_entities=10_000,
            memory_outcomes=1_000_000,
            stale_runs=6,
            stale_sensors=2_000,
        )
        # Five runs: a single run's ratio swings by ±0.1 on a shared machine.
        tasks = TaskSettings(tasks=10_000, runs=5, concurrency=16)
    default = BENCH / ("RESULTS-quick.md" if quick else "RESULTS.md")
    return Settings(quick, relay, ha, tasks, os.environ.get("BENCH_RESULTS", str(default)))
