"""What the relay benchmarks measure: the settings and one record per run."""

from __future__ import annotations

from dataclasses import dataclass, field

from bench.cpu import others_share
from bench.profile import Profile

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
    drain_runs: int
    startup_runs: int
    warmup_seconds: float
    # Both relays connected and idle (no readings), the agent's probes on their defaults.
    idle_seconds: float = 30.0
    # The agent pinned to one core: the rates tried, in order, until one is not sustained.
    one_core_rates: tuple[int, ...] = (1_000, 5_000)


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

    @property
    def relay_cores(self) -> float:
        """Cores the relay process kept busy on average during the run."""
        wall = self.cpu.get("wall_s", 0.0)
        return self.cpu.get(self.relay, 0.0) / wall if wall else 0.0


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
    cpu: dict[str, float]

    @property
    def busy(self) -> float:
        """Share of both cores in use during the run."""
        return self.cpu.get("machine_busy", 0.0)

    @property
    def others_share(self) -> float:
        """Share of the machine that processes outside the benchmark took during the run."""
        return others_share(self.cpu)


@dataclass(frozen=True, slots=True)
class IdleRun:
    """A relay connected with nothing to relay: what it costs to wait."""

    relay: str
    seconds: float
    cpu_s: float
    # Voluntary context switches of all its threads: how often it woke up.
    wakeups: int

    @property
    def core_share(self) -> float:
        """The share of one core the relay kept busy."""
        return self.cpu_s / self.seconds

    @property
    def wakeups_per_s(self) -> float:
        return self.wakeups / self.seconds


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
    # The same 1,000/s after the bursts and the outage: what a long-running agent keeps.
    rss_after_bursts: int = 0
    after_bursts: LatencyRun | None = None
    agent_peak_rss: int = 0
    load_average: tuple[float, float, float] = (0.0, 0.0, 0.0)
    # py-spy profiles of one extra throughput run per relay; empty without py-spy.
    profiles: dict[str, Profile] = field(default_factory=dict)
    idle: dict[str, IdleRun] = field(default_factory=dict)
    # The agent pinned to one core, one latency run per step rate, lowest first.
    one_core: list[LatencyRun] = field(default_factory=list)
    batch_size: int = 0
    batch_interval_ms: int = 0
    postgres_version: str = ""


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (the ceil(q·n)-th smallest value)."""
    ordered = sorted(values)
    rank = max(1, -(-int(q * 1000) * len(ordered) // 1000))
    return ordered[min(rank, len(ordered)) - 1]
