"""The figures the report shows, computed from one run's measurements, and their formats."""

from __future__ import annotations

import os
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bench.home_assistant import HaResults
from bench.measures import AGENT, BASELINE, RelayResults

MB = 1_000_000
# Typographic signs, spelt as escapes so they are not mistaken for x and -.
TIMES = "\u00d7"
DASH = "\u2013"


@dataclass(frozen=True, slots=True)
class Spread:
    """Median and range of a few runs."""

    median: float
    low: float
    high: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Spread:
        assert values, "no runs to summarise"
        return cls(statistics.median(values), min(values), max(values))

    def show(self, fmt: Callable[[float], str]) -> str:
        return f"{fmt(self.median)} ({fmt(self.low)}{DASH}{fmt(self.high)})"


def rate(value: float) -> str:
    return f"{value:,.0f}/s"


def ms(value: float) -> str:
    return f"{value * 1000:,.0f} ms"


def seconds(value: float) -> str:
    return f"{value:.2f} s"


def megabytes(value: float) -> str:
    return f"{value / MB:.1f} MB"


def times(value: float) -> str:
    return f"{value:.2f}{TIMES}"


def micro(value: float) -> str:
    return f"{value * 1e6:,.1f} µs" if value < 1e-5 else f"{value * 1e6:,.0f} µs"


def percent(value: float) -> str:
    return f"{value * 100:.0f} %"


def core_percent(value: float) -> str:
    """A share of one core, fine enough for an idle process."""
    return f"{value * 100:.2f} %"


def ratios(numerators: Sequence[float], denominators: Sequence[float]) -> list[float]:
    """Run by run: each figure over the baseline's of the same run."""
    return [a / b for a, b in zip(numerators, denominators, strict=True)]


class Figures:
    """Accessors over the raw measurements, by relay, rate and follower."""

    def __init__(self, relay: RelayResults, ha: HaResults) -> None:
        self.relay = relay
        self.ha = ha

    def throughput(self, relay: str) -> list[float]:
        return [run.rate for run in self.relay.throughput if run.relay == relay]

    def throughput_ratios(self) -> list[float]:
        return ratios(self.throughput(AGENT), self.throughput(BASELINE))

    def latency(self, relay: str, rate_: int, field: str) -> list[float]:
        return [
            getattr(run, field)
            for run in self.relay.latency
            if run.relay == relay and run.rate == rate_
        ]

    def latency_cpu(self, relay: str, rate_: int, part: str) -> list[float]:
        """CPU seconds per reading of one part during the runs at one rate."""
        return [
            run.cpu.get(part, 0.0) / run.readings
            for run in self.relay.latency
            if run.relay == relay and run.rate == rate_
        ]

    def cpu_per_reading_ratios(self, rate_: int) -> list[float]:
        """Run by run: the agent's CPU per reading over the baseline's next to it."""
        return ratios(
            self.latency_cpu(AGENT, rate_, AGENT), self.latency_cpu(BASELINE, rate_, BASELINE)
        )

    def steady_rss(self, relay: str) -> list[float]:
        return [float(value) for value in self.relay.steady_rss.get(relay, [])]

    def ha_runs(self, kind: str, mode: str, field: str) -> list[float]:
        """HA: `kind` write or command, follower `mode`, `field` wall, cpu or others."""
        return [float(run[field]) for run in self.ha.overhead[kind][mode]]

    def ha_others_share(self, kind: str, mode: str) -> list[float]:
        """Share of the machine other processes took during each HA run."""
        cores = os.cpu_count() or 1
        return [
            float(run["others"]) / (float(run["wall"]) * cores)
            for run in self.ha.overhead[kind][mode]
        ]

    def ha_ratios(self, kind: str, field: str) -> list[float]:
        return ratios(self.ha_runs(kind, "integration", field), self.ha_runs(kind, "noop", field))

    def per_command(self, field: str) -> list[float]:
        """Seconds the hub adds to one command: with it minus with the no-op follower."""
        commands = int(self.ha.overhead["commands"])
        return [
            (a - b) / commands
            for a, b in zip(
                self.ha_runs("command", "integration", field),
                self.ha_runs("command", "noop", field),
                strict=True,
            )
        ]

    def per_stale_report(self, field: str) -> list[float]:
        """Seconds the hub adds to one stale sensor's report: with it minus without."""
        stale = self.ha.stale
        sensors = int(stale["sensors"])
        return [
            (float(a[field]) - float(b[field])) / sensors
            for a, b in zip(stale["report"]["integration"], stale["report"]["none"], strict=True)
        ]

    def hub_memory(self) -> list[float]:
        return [float(run["rss_after"] - run["rss_before"]) for run in self.ha.memory]
