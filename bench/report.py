"""RESULTS.md, written from the measurements of one run: summary against the goals, then details."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bench.home_assistant import HaResults
from bench.machine import Machine
from bench.relay import AGENT, BASELINE, RelayResults
from bench.settings import Settings

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
    return f"{value * 1e6:,.0f} µs"


def verdict(met: bool) -> str:
    return "**yes**" if met else "**no**"


class Report:
    def __init__(
        self,
        settings: Settings,
        machine: Machine,
        relay: RelayResults,
        ha: HaResults,
        elapsed_s: float,
    ) -> None:
        self.settings = settings
        self.machine = machine
        self.relay = relay
        self.ha = ha
        self.elapsed_s = elapsed_s
        self.lines: list[str] = []

    def add(self, *lines: str) -> None:
        self.lines.extend(lines)

    def table(self, header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
        self.add("| " + " | ".join(header) + " |", "|" + "---|" * len(header))
        self.add(*("| " + " | ".join(row) + " |" for row in rows))
        self.add("")

    # figures ------------------------------------------------------------------------

    def throughput(self, relay: str) -> list[float]:
        return [run.rate for run in self.relay.throughput if run.relay == relay]

    def throughput_ratios(self) -> list[float]:
        return [
            a / b for a, b in zip(self.throughput(AGENT), self.throughput(BASELINE), strict=True)
        ]

    def latency(self, relay: str, rate_: int, field: str) -> list[float]:
        return [
            getattr(run, field)
            for run in self.relay.latency
            if run.relay == relay and run.rate == rate_
        ]

    def write_s(self, mode: str) -> list[float]:
        return [float(value) for value in self.ha.overhead["write_s"][mode]]

    def command_s(self, mode: str) -> list[float]:
        return [float(value) for value in self.ha.overhead["command_s"][mode]]

    # sections -----------------------------------------------------------------------

    def render(self) -> str:
        self.header()
        self.summary()
        self.throughput_section()
        self.latency_section()
        self.drain_section()
        self.footprint_section()
        self.home_assistant_section()
        self.method_section()
        return "\n".join(self.lines).rstrip() + "\n"

    def header(self) -> None:
        machine = self.machine
        mode = "quick smoke run (`BENCH_QUICK=1`)" if self.settings.quick else "full run"
        self.add(
            "# Benchmark results",
            "",
            "Written by `make bench` (`python -m bench`); do not edit by hand. Every figure",
            "is the median of the runs with the range in brackets; ratios compare each run",
            "with the baseline measured next to it in the same run.",
            "",
        )
        self.table(
            ("", ""),
            [
                ("Date", machine.date),
                ("Commit", machine.commit),
                ("Machine", machine.hardware),
                ("Software", machine.software),
                ("Spool disk", machine.spool_disk),
                ("Mode", f"{mode}, {self.settings.relay.runs} runs per relay figure"),
                ("Run time", f"{self.elapsed_s / 60:.1f} min"),
            ],
        )

    def summary(self) -> None:
        relay = self.relay
        agent_tp = Spread.of(self.throughput(AGENT))
        base_tp = Spread.of(self.throughput(BASELINE))
        tp_ratio = Spread.of(self.throughput_ratios())
        rows = [
            (
                f"Relay throughput, {self.settings.relay.throughput_readings:,} readings, "
                "100 publishers",
                agent_tp.show(rate),
                base_tp.show(rate),
                tp_ratio.show(times),
                f"≥ 10,000/s and ≥ 0.70{TIMES}",
                verdict(agent_tp.median >= 10_000 and tp_ratio.median >= 0.7),
            )
        ]
        for rate_ in self.settings.relay.latency_rates:
            agent = Spread.of(self.latency(AGENT, rate_, "p99"))
            base = Spread.of(self.latency(BASELINE, rate_, "p99"))
            ratios = [
                a / b
                for a, b in zip(
                    self.latency(AGENT, rate_, "p99"),
                    self.latency(BASELINE, rate_, "p99"),
                    strict=True,
                )
            ]
            goal = "≤ 250 ms" if rate_ == 1000 else "—"
            met = verdict(agent.median <= 0.250) if rate_ == 1000 else "—"
            rows.append(
                (
                    f"Latency p99, publish to commit, at {rate_:,}/s",
                    agent.show(ms),
                    base.show(ms),
                    Spread.of(ratios).show(times),
                    goal,
                    met,
                )
            )
        drain = Spread.of([run.rate for run in relay.drain])
        steady = agent_tp.median
        rows.append(
            (
                f"Drain after a database outage, {self.settings.relay.drain_readings:,} "
                "readings spooled",
                drain.show(rate),
                f"steady rate {rate(steady)}",
                Spread.of([run.rate / steady for run in relay.drain]).show(times),
                f"≥ 0.80{TIMES} steady",
                verdict(drain.median / steady >= 0.8),
            )
        )
        rss = Spread.of([float(v) for v in relay.steady_rss.get(AGENT, [])])
        base_rss = Spread.of([float(v) for v in relay.steady_rss.get(BASELINE, [])])
        rows.append(
            (
                "Agent RSS at steady state (1,000 readings/s)",
                rss.show(megabytes),
                base_rss.show(megabytes),
                times(rss.median / base_rss.median),
                "≤ 60 MB",
                verdict(rss.median <= 60 * MB),
            )
        )
        start = Spread.of(relay.startup_s[AGENT])
        base_start = Spread.of(relay.startup_s[BASELINE])
        rows.append(
            (
                "Start-up, process spawn to ready",
                start.show(seconds),
                base_start.show(seconds),
                times(start.median / base_start.median),
                "≤ 1 s",
                verdict(start.median <= 1.0),
            )
        )
        overhead = self.ha.overhead
        ratios = [
            a / b for a, b in zip(self.write_s("integration"), self.write_s("noop"), strict=True)
        ]
        rows.append(
            (
                f"HA: {overhead['writes']:,} state writes on {overhead['entities']:,} "
                "followed entities",
                Spread.of(self.write_s("integration")).show(seconds),
                "no-op follower " + Spread.of(self.write_s("noop")).show(seconds),
                Spread.of(ratios).show(times),
                f"≤ 1.10{TIMES}",
                verdict(statistics.median(ratios) <= 1.10),
            )
        )
        per_command = self.per_command()
        rows.append(
            (
                "HA: cost of tracking one command",
                Spread.of(per_command).show(micro),
                "no-op follower",
                Spread.of(
                    [
                        a / b
                        for a, b in zip(
                            self.command_s("integration"), self.command_s("noop"), strict=True
                        )
                    ]
                ).show(times),
                "reported",
                "—",
            )
        )
        memory = Spread.of([m["rss_after"] - m["rss_before"] for m in self.ha.memory])
        first = self.ha.memory[0]
        rows.append(
            (
                f"HA: memory of {first['entities']:,} tracked entities with "
                f"{first['outcomes']:,} outcomes in the window",
                memory.show(megabytes),
                "—",
                "—",
                "≤ 100 MB",
                verdict(memory.median <= 100 * MB),
            )
        )
        self.add("## Summary", "")
        self.table(("Benchmark", "Farm Resilience", "Baseline", "Ratio", "Goal", "Met"), rows)

    def per_command(self) -> list[float]:
        commands = int(self.ha.overhead["commands"])
        return [
            (a - b) / commands
            for a, b in zip(self.command_s("integration"), self.command_s("noop"), strict=True)
        ]

    def throughput_section(self) -> None:
        self.add(
            "## Relay throughput",
            "",
            f"{self.settings.relay.throughput_readings:,} QoS 1 readings from 100 concurrent "
            "publishers as fast as the broker takes them; readings per second from the first "
            "publish to the commit of the last row. CPU: seconds used per part during the run "
            "and the share of both cores busy.",
            "",
        )
        rows = []
        for run in self.relay.throughput:
            cpu = run.cpu
            per_reading = {name: cpu.get(name, 0.0) / run.readings for name in cpu}
            rows.append(
                (
                    run.relay,
                    rate(run.rate),
                    seconds(run.seconds),
                    micro(per_reading.get(run.relay, 0.0)),
                    micro(per_reading.get("postgres", 0.0)),
                    micro(per_reading.get("pgbouncer", 0.0)),
                    micro(per_reading.get("mosquitto", 0.0)),
                    micro(per_reading.get("publishers", 0.0)),
                    f"{cpu.get('machine_busy', 0.0) * 100:.0f} %",
                )
            )
        self.table(
            (
                "Relay",
                "Rate",
                "Time",
                "Relay CPU/reading",
                "PostgreSQL",
                "PgBouncer",
                "Mosquitto",
                "Publishers",
                "Both cores busy",
            ),
            rows,
        )

    def latency_section(self) -> None:
        self.add(
            "## End-to-end latency",
            "",
            f"Readings at a fixed rate for {self.settings.relay.latency_seconds:g} s from 100 "
            "publishers; each reading's latency is the commit time of its row (PostgreSQL's "
            "commit timestamp) minus the publish time it carries. Both relays use the agent's "
            f"defaults: batches of {self.relay.batch_size} readings or "
            f"{self.relay.batch_interval_ms} ms, whichever comes first.",
            "",
        )
        rows = []
        for rate_ in self.settings.relay.latency_rates:
            for relay in (AGENT, BASELINE):
                rows.append(
                    (
                        f"{rate_:,}/s",
                        relay,
                        Spread.of(self.latency(relay, rate_, "p50")).show(ms),
                        Spread.of(self.latency(relay, rate_, "p95")).show(ms),
                        Spread.of(self.latency(relay, rate_, "p99")).show(ms),
                        Spread.of(self.latency(relay, rate_, "worst")).show(ms),
                        Spread.of(self.latency(relay, rate_, "achieved_rate")).show(rate),
                    )
                )
        self.table(("Rate", "Relay", "p50", "p95", "p99", "Worst", "Rate achieved"), rows)

    def drain_section(self) -> None:
        self.add(
            "## Drain after a database outage",
            "",
            "PostgreSQL stopped; the readings arrive and the agent spools them; PostgreSQL "
            "started again. Drain rate: readings over the time from the first to the last "
            "commit after the outage. Resume: from PostgreSQL being back to the first commit "
            "(the agent's retry back-off). Spool rate: readings spooled per second during the "
            "outage (polled every 0.25 s).",
            "",
        )
        rows = [
            (
                str(number + 1),
                rate(run.rate),
                seconds(run.drain_seconds),
                seconds(run.resume_seconds),
                rate(run.readings / run.spool_seconds),
                run.route,
            )
            for number, run in enumerate(self.relay.drain)
        ]
        self.table(("Run", "Drain rate", "Drain time", "Resume", "Spool rate", "Route"), rows)

    def footprint_section(self) -> None:
        relay = self.relay
        self.add(
            "## Footprint",
            "",
            "RSS at steady state: median of samples taken every 0.25 s during the second half "
            "of each 1,000 readings/s latency run. Start-up: from spawning the process to the "
            "agent's `/readyz` answering 200 (broker connected, spool open, database route "
            "up); for the baseline, to subscribed with its database connection open.",
            "",
        )
        self.table(
            ("", "Agent", "Baseline"),
            [
                (
                    "RSS at 1,000/s",
                    Spread.of([float(v) for v in relay.steady_rss[AGENT]]).show(megabytes),
                    Spread.of([float(v) for v in relay.steady_rss[BASELINE]]).show(megabytes),
                ),
                ("Peak RSS over the whole run (VmHWM)", megabytes(relay.agent_peak_rss), "—"),
                (
                    "Start-up to ready",
                    Spread.of(relay.startup_s[AGENT]).show(seconds),
                    Spread.of(relay.startup_s[BASELINE]).show(seconds),
                ),
            ],
        )

    def home_assistant_section(self) -> None:
        overhead = self.ha.overhead
        self.add(
            "## Home Assistant overhead",
            "",
            f"A real Home Assistant {self.ha.version} core in one process, "
            f"{overhead['entities']:,} switches. Each run writes {overhead['writes']:,} state "
            "changes round-robin over them (yielding to the loop every 100 writes) and times "
            "until every follower has run: with the integration's hub following them, with a "
            "no-op `async_track_state_change_event` callback on the same entities instead, "
            "and with no follower at all. The three alternate in each run, in a changing "
            "order. Then "
            f"{overhead['commands']:,} commands (`switch.turn_on`/`turn_off`, answered at once "
            "by the simulated device) with the hub tracking them and with the no-op follower.",
            "",
        )
        rows = [
            (
                mode,
                Spread.of(self.write_s(mode)).show(seconds),
                micro(statistics.median(self.write_s(mode)) / int(overhead["writes"])),
            )
            for mode in ("integration", "noop", "none")
        ]
        self.table(("Follower", "State writes", "Per write"), rows)
        rows = [
            (
                mode,
                Spread.of(self.command_s(mode)).show(seconds),
                micro(statistics.median(self.command_s(mode)) / int(overhead["commands"])),
            )
            for mode in ("integration", "noop")
        ]
        self.table(("Follower", "Commands", "Per command"), rows)
        counted = overhead["commands_counted"]
        self.add(
            f"Outcomes the hub counted per run: {', '.join(f'{c:,}' for c in counted)} "
            f"(of {int(overhead['commands']):,} commands).",
            "",
        )
        memory = self.ha.memory
        self.add(
            f"Memory: a fresh process with {memory[0]['entities']:,} switch states; RSS before "
            "the hub is set up and after it tracks them all with "
            f"{memory[0]['outcomes']:,} outcomes recorded over its whole window "
            "(`WindowStatistics.record`, spread over 24 h, 98 % successes), then the peak "
            "while unloading writes the window to storage.",
            "",
        )
        self.table(
            ("Run", "Before", "After", "Hub's share", "Peak while saving"),
            [
                (
                    str(number + 1),
                    megabytes(run["rss_before"]),
                    megabytes(run["rss_after"]),
                    megabytes(run["rss_after"] - run["rss_before"]),
                    megabytes(run["rss_peak_saving"]),
                )
                for number, run in enumerate(memory)
            ],
        )

    def method_section(self) -> None:
        self.add(
            "## How it is measured",
            "",
            "- Throwaway PostgreSQL 15 + PGMQ, PgBouncer (transaction mode, standing in for "
            "Supavisor) and Mosquitto from `tools/services.py`; PostgreSQL keeps commit "
            "timestamps (`track_commit_timestamp = on`) so commit times are exact.",
            "- The agent runs as `python -m farm_agent run --config …` with its defaults "
            "(pooler first, direct fallback, spool on local disk with a sync per batch). The "
            "baseline (`bench/baseline.py`) is a paho subscriber feeding asyncpg "
            "`pgmq.send_batch` over the same pooler, with the same batch size and linger, "
            "no spool and no ledger, in its own process.",
            "- Publishers: 100 MQTT connections over 4 processes (`bench/publish.py`), QoS 1, "
            "at most 200 unacknowledged each; they write MQTT packets themselves, because "
            "paho's per-message cost would take the CPU the relays need on 2 cores.",
            "- Every run checks that each reading reached the queue exactly once.",
            "- MB = 10⁶ bytes.",
        )
