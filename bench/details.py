"""The detail sections of RESULTS.md: every run, where the CPU went, and how it was measured."""

from __future__ import annotations

import statistics
from typing import TYPE_CHECKING

from bench import efficiency, profile
from bench.cpu import others_share
from bench.figures import (
    Figures,
    Spread,
    core_percent,
    megabytes,
    micro,
    ms,
    percent,
    rate,
    seconds,
)
from bench.measures import AGENT, BASELINE
from bench.settings import Settings

if TYPE_CHECKING:
    from bench.report import Document

CPU_PARTS = ("postgres", "pgbouncer", "mosquitto", "publishers")


def write(doc: Document, settings: Settings, figures: Figures) -> None:
    throughput(doc, settings, figures)
    profiles(doc, figures)
    latency(doc, settings, figures)
    drain(doc, figures)
    footprint(doc, figures)
    idle(doc, figures)
    one_core(doc, figures)
    home_assistant(doc, figures)
    stale_sensors(doc, figures)


def throughput(doc: Document, settings: Settings, figures: Figures) -> None:
    doc.add(
        "## Relay throughput",
        "",
        f"{settings.relay.throughput_readings:,} QoS 1 readings from 100 concurrent publishers "
        "as fast as the broker takes them; readings per second from the first publish to the "
        "commit of the last row. Then where the CPU went, in CPU-µs per reading: the relay "
        "process (all its threads), PostgreSQL with its backends, PgBouncer, Mosquitto, the "
        "publishers; how busy the two cores were, and the share of the machine that other "
        "processes (no part of the benchmark) took meanwhile.",
        "",
    )
    rows = []
    for run in figures.relay.throughput:
        per = {name: value / run.readings for name, value in run.cpu.items()}
        rows.append(
            (
                run.relay,
                rate(run.rate),
                seconds(run.seconds),
                f"{run.relay_cores:.2f}",
                micro(per.get(run.relay, 0.0)),
                *(micro(per.get(part, 0.0)) for part in CPU_PARTS),
                percent(run.cpu.get("machine_busy", 0.0)),
                percent(others_share(run.cpu)),
            )
        )
    doc.table(
        (
            "Relay",
            "Rate",
            "Time",
            "Relay cores",
            "Relay CPU",
            "PostgreSQL",
            "PgBouncer",
            "Mosquitto",
            "Publishers",
            "Cores busy",
            "Other processes",
        ),
        rows,
    )
    doc.add(*bound(figures), "")


def bound(figures: Figures) -> list[str]:
    """What limited the relays, read from the CPU figures: their own CPU or the machine."""
    lines = []
    for name in (AGENT, BASELINE):
        runs = [run for run in figures.relay.throughput if run.relay == name]
        cores = statistics.median(run.relay_cores for run in runs)
        busy = statistics.median(run.cpu.get("machine_busy", 0.0) for run in runs)
        per_reading = statistics.median(run.cpu.get(name, 0.0) / run.readings for run in runs)
        if busy >= 0.9:
            limit = "the machine was saturated, so the hardware bounds this figure"
        elif cores >= 0.8:
            limit = (
                "the relay process used about one core (its Python threads share one "
                "interpreter lock) while the machine had CPU to spare: its own CPU per "
                f"reading bounds it, at about {1 / per_reading:,.0f} readings/s per core"
            )
        else:
            limit = "neither the relay's core nor the machine was saturated (waits bound it)"
        lines.append(
            f"- {name}: {cores:.2f} cores in the relay process, both cores {percent(busy)} "
            f"busy, {micro(per_reading)} of relay CPU per reading: {limit}."
        )
    return lines


def profiles(doc: Document, figures: Figures) -> None:
    found = figures.relay.profiles
    doc.add("## Where the relays' CPU goes", "")
    if not found:
        doc.add(
            "Not profiled: py-spy is missing (`make` installs it in .venv) or could not "
            "trace the relays (it needs the right to trace processes, e.g. root).",
            "",
        )
        return
    doc.add(
        f"py-spy samples ({profile.SAMPLES_PER_S}/s, every thread, idle waits left out) of "
        "one extra throughput run per relay, not one of the measured runs. Each sample is "
        "charged to the component of its innermost Python frame; time in C code (SQLite, "
        "system calls) counts for the Python function that called it.",
        "",
    )
    names = list(found)
    doc.table(
        ("Thread", *names),
        _shares_table([dict(found[name].threads) for name in names]),
    )
    doc.table(
        ("Component", *names),
        _shares_table([dict(found[name].components) for name in names]),
    )
    for name in names:
        doc.table(
            (f"{name}: innermost functions", "Share of samples"),
            [(function, _share(share)) for function, share in found[name].functions],
        )


def _share(value: float) -> str:
    return f"{value * 100:.1f} %"


def _shares_table(columns: list[dict[str, float]]) -> list[tuple[str, ...]]:
    keys = sorted(
        {key for column in columns for key in column},
        key=lambda key: -max(column.get(key, 0.0) for column in columns),
    )
    return [
        (key, *(_share(column[key]) if key in column else "—" for column in columns))
        for key in keys
    ]


def latency(doc: Document, settings: Settings, figures: Figures) -> None:
    relay = figures.relay
    doc.add(
        "## End-to-end latency",
        "",
        f"Readings at a fixed rate for {settings.relay.latency_seconds:g} s from 100 "
        "publishers; each reading's latency is the commit time of its row (PostgreSQL's "
        "commit timestamp) minus the publish time it carries. Both relays use the agent's "
        f"defaults: a batch leaves at {relay.batch_size} readings or when its oldest has "
        f"waited {relay.batch_interval_ms} ms, so at low rates most of the latency is that "
        "wait, by design.",
        "",
    )
    rows = []
    for rate_ in settings.relay.latency_rates:
        for name in (AGENT, BASELINE):
            rows.append(
                (
                    f"{rate_:,}/s",
                    name,
                    *(
                        Spread.of(figures.latency(name, rate_, field)).show(ms)
                        for field in ("p50", "p95", "p99", "worst")
                    ),
                    rate(statistics.median(figures.latency(name, rate_, "achieved_rate"))),
                    micro(statistics.median(figures.latency_cpu(name, rate_, name))),
                    percent(statistics.median(figures.latency(name, rate_, "busy"))),
                    percent(statistics.median(figures.latency(name, rate_, "others_share"))),
                )
            )
    doc.table(
        (
            "Rate",
            "Relay",
            "p50",
            "p95",
            "p99",
            "Worst",
            "Rate achieved",
            "Relay CPU/reading",
            "Cores busy",
            "Other processes",
        ),
        rows,
    )
    after = relay.after_bursts
    if after is not None:
        doc.add(
            "After the throughput bursts and the outage, the agent at 1,000/s again: "
            f"p50 {ms(after.p50)}, p95 {ms(after.p95)}, p99 {ms(after.p99)}, "
            f"worst {ms(after.worst)}.",
            "",
        )


def drain(doc: Document, figures: Figures) -> None:
    doc.add(
        "## Drain after a database outage",
        "",
        "PostgreSQL stopped; the readings arrive and the agent spools them; PostgreSQL started "
        "again. Drain rate: readings over the time from the first to the last commit after "
        "the outage. Resume: from PostgreSQL being back to the first commit (the agent's retry "
        "back-off, up to 30 s). Spool rate: readings spooled per second during the outage "
        "(polled every 0.25 s). Route: the agent's route at the end of the drain.",
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
        for number, run in enumerate(figures.relay.drain)
    ]
    doc.table(("Run", "Drain rate", "Drain time", "Resume", "Spool rate", "Route"), rows)


def footprint(doc: Document, figures: Figures) -> None:
    relay = figures.relay
    doc.add(
        "## Footprint",
        "",
        "RSS at steady state: median of samples taken every 0.25 s in the second half of each "
        "1,000 readings/s latency run, on relays that have seen only steady rates so far. The "
        "same is measured again on the agent after the throughput bursts and the outage. "
        "Start-up: from spawning the process to the agent's `/readyz` answering 200 (broker "
        "connected, spool open, database route up); for the baseline, to subscribed with its "
        "database connection open.",
        "",
    )
    doc.table(
        ("", "Agent", "Baseline"),
        [
            (
                "RSS at 1,000/s",
                Spread.of(figures.steady_rss(AGENT)).show(megabytes),
                Spread.of(figures.steady_rss(BASELINE)).show(megabytes),
            ),
            (
                "RSS at 1,000/s after the bursts and the outage",
                megabytes(relay.rss_after_bursts),
                "—",
            ),
            ("Peak RSS over the whole run (VmHWM)", megabytes(relay.agent_peak_rss), "—"),
            (
                "Start-up to ready",
                Spread.of(relay.startup_s[AGENT]).show(seconds),
                Spread.of(relay.startup_s[BASELINE]).show(seconds),
            ),
        ],
    )


def idle(doc: Document, figures: Figures) -> None:
    runs = figures.relay.idle
    if not runs:
        return
    doc.add(
        "## Idle",
        "",
        "Both relays connected to the broker and the database, no readings, side by side "
        "over the same time; the agent's probes on their default interval. CPU: user + system "
        "time of all the relay's threads over the wall time, as a share of one core. Wake-ups: "
        "voluntary context switches of all its threads (each time one went to sleep and was "
        "woken again: a timer, a packet, another thread).",
        "",
    )
    doc.table(
        ("Relay", "Time", "CPU", "Share of one core", "Wake-ups", "Per second"),
        [
            (
                run.relay,
                seconds(run.seconds),
                seconds(run.cpu_s),
                core_percent(run.core_share),
                f"{run.wakeups:,}",
                f"{run.wakeups_per_s:.2f}/s",
            )
            for run in runs.values()
        ],
    )


def one_core(doc: Document, figures: Figures) -> None:
    runs = figures.relay.one_core
    if not runs:
        return
    doc.add(
        "## The agent on one core",
        "",
        "The agent's threads pinned to one CPU (as `taskset -a -c 0`; PostgreSQL, PgBouncer, "
        "Mosquitto and the publishers still run on both), readings at rising rates until one "
        f"is not sustained: p99 above {ms(efficiency.SUSTAINED_P99_S)} or the publishers "
        f"held below {efficiency.SUSTAINED_RATE_SHARE:.0%} of the rate. One run per rate. A "
        "slower core (a Raspberry Pi's) sustains about this rate times its speed relative "
        "to this one; the CPU per reading says how much of the core each rate takes.",
        "",
    )
    doc.table(
        ("Rate", "p50", "p95", "p99", "Worst", "Rate achieved", "CPU/reading", "Sustained"),
        [
            (
                f"{run.rate:,}/s",
                ms(run.p50),
                ms(run.p95),
                ms(run.p99),
                ms(run.worst),
                rate(run.achieved_rate),
                micro(run.cpu.get(run.relay, 0.0) / run.readings),
                "yes" if efficiency.sustained(run) else "no",
            )
            for run in runs
        ],
    )


def home_assistant(doc: Document, figures: Figures) -> None:
    overhead = figures.ha.overhead
    writes, commands = int(overhead["writes"]), int(overhead["commands"])
    doc.add(
        "## Home Assistant overhead",
        "",
        f"A real Home Assistant {figures.ha.version} core in one process, "
        f"{overhead['entities']:,} switches. Each run writes {writes:,} state changes "
        "round-robin over them (yielding to the loop every 100 writes) and times until every "
        "follower has run: with the integration's hub following them, with a no-op "
        "`async_track_state_change_event` callback on the same entities instead, and with no "
        "follower at all; the three alternate in a rotating order. Then "
        f"{commands:,} commands (`switch.turn_on`/`turn_off`, answered at once by the "
        "simulated device) with the hub tracking them and with the no-op follower. CPU: the "
        "event-loop thread's CPU time, which other processes on the machine do not inflate.",
        "",
    )
    rows = []
    for kind, count in (("write", writes), ("command", commands)):
        modes = ("integration", "noop", "none") if kind == "write" else ("integration", "noop")
        for mode in modes:
            cpu = figures.ha_runs(kind, mode, "cpu")
            rows.append(
                (
                    f"{count:,} {kind}s",
                    mode,
                    Spread.of(cpu).show(seconds),
                    micro(statistics.median(cpu) / count),
                    Spread.of(figures.ha_runs(kind, mode, "wall")).show(seconds),
                    percent(statistics.median(figures.ha_others_share(kind, mode))),
                )
            )
    doc.table(
        ("Work", "Follower", "Event-loop CPU", "Per item", "Wall clock", "Other processes"),
        rows,
    )
    counted = ", ".join(f"{count:,}" for count in overhead["commands_counted"])
    doc.add(f"Outcomes the hub counted per run: {counted} (of {commands:,} commands).", "")
    memory = figures.ha.memory
    doc.add(
        f"Memory: a fresh process with {memory[0]['entities']:,} switch states; RSS before the "
        f"hub is set up and after it tracks them all with {memory[0]['outcomes']:,} outcomes "
        "recorded over its whole window (`WindowStatistics.record`, spread over 24 h, 98 % "
        "successes) and has refreshed its entities; then the peak while unloading writes the "
        "window to storage.",
        "",
    )
    doc.table(
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


def stale_sensors(doc: Document, figures: Figures) -> None:
    stale = figures.ha.stale
    sensors = int(stale["sensors"])
    came_back = ", ".join(f"{count:,}" for count in stale["came_back"])
    doc.add(
        "## Stale sensors coming back",
        "",
        f"The hub monitors {sensors:,} sensors, all of which have gone stale; then each "
        "reports once, one per event-loop iteration (as from a gateway back on line). "
        "Alternated with the same reports and no hub. Per report: the event-loop CPU "
        "with the hub minus without, over the sensors. The scale test counts the "
        "integration's steps per report on 100 and 2,000 stale sensors: the same.",
        "",
    )
    doc.table(
        ("Follower", "Event-loop CPU", "Per report"),
        [
            (
                mode,
                Spread.of([float(run["cpu"]) for run in stale["report"][mode]]).show(seconds),
                micro(
                    statistics.median(float(run["cpu"]) for run in stale["report"][mode]) / sensors
                ),
            )
            for mode in ("integration", "none")
        ],
    )
    doc.add(f"Stale sensors the hub saw come back per run: {came_back} (of {sensors:,}).", "")


def method(doc: Document) -> None:
    doc.add(
        "## How it is measured",
        "",
        "- Throwaway PostgreSQL 15 + PGMQ, PgBouncer (transaction mode, standing in for "
        "Supavisor) and Mosquitto from `tools/services.py`; PostgreSQL keeps commit timestamps "
        "(`track_commit_timestamp = on`) so commit times are exact.",
        "- The agent runs as `python -m farm_agent run --config …` with its defaults (pooler "
        "first, direct fallback, spool on local disk with one sync per commit window). The "
        "baseline (`bench/baseline.py`) is a paho subscriber feeding asyncpg "
        "`pgmq.send_batch` over the same pooler, with the same batch size and linger, no "
        "spool and no ledger, in its own process.",
        "- Publishers: 100 MQTT connections over 4 processes (`bench/publish.py`), QoS 1, at "
        "most 200 unacknowledged each; they write MQTT packets themselves, because paho's "
        "per-message cost would take the CPU the relays need on 2 cores.",
        "- Every run checks that each reading reached the queue exactly once.",
        "- The task worker runs as `python -m farm_agent work --config …` with a no-op "
        "handler (`bench/tasks.py`); the bare loop is a few lines of asyncpg in its own "
        "process.",
        "- CPU of the relays, the worker, the bare loop, Mosquitto and PgBouncer: each "
        "process's CPU clock (nanoseconds, every thread); of PostgreSQL with its backends: "
        "/proc's 10 ms clock ticks, reaped backends included.",
        "- The agent's and the baselines' modules are byte-compiled first (`compileall`), as "
        "`pip install` does: this machine sets PYTHONDONTWRITEBYTECODE, which would make each "
        "start compile every module from source (slower, and ~0.6 MB more RSS).",
        "- MB = 10⁶ bytes.",
    )
