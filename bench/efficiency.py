"""The relay on a quiet farm and on a small host: what waiting costs, and one core's headroom.

Idle: both relays connected, no readings, the agent's probes on their default
interval; the CPU each used and how often its threads woke (voluntary context
switches), measured side by side over the same minutes.

One core: the agent's threads pinned to CPU 0 (as `taskset -a -c 0`; the services
and publishers still run anywhere), readings at rising rates until one is not
sustained, with the p99 publish-to-commit latency at each: a Raspberry Pi owner
reads off the headroom of one core (theirs is slower; scale by the CPU per reading).
"""

from __future__ import annotations

import os
import time

from rich.progress import Progress

from bench.cpu import process_seconds
from bench.measures import IdleRun, LatencyRun
from bench.processes import AgentProcess, RelayProcess
from bench.procinfo import pin_threads, voluntary_switches
from bench.runs import Runner

# After start-up (queues set up, the first probe round) before idling is measured.
SETTLE_S = 3.0
# A rate is sustained when the publishers kept to it and the agent kept up with them:
# an agent that falls behind sees its latency grow with the run, far past this.
SUSTAINED_P99_S = 0.5
SUSTAINED_RATE_SHARE = 0.95


def measure_idle(
    relays: dict[str, RelayProcess], seconds: float, progress: Progress
) -> dict[str, IdleRun]:
    """Every relay connected and idle for `seconds`, at the same time."""
    time.sleep(SETTLE_S)
    task = progress.add_task(f"idle, {seconds:g} s, no readings", total=seconds)
    before = {name: _counters(relay.pid) for name, relay in relays.items()}
    began = time.monotonic()
    while (elapsed := time.monotonic() - began) < seconds:
        progress.update(task, completed=elapsed)
        time.sleep(min(1.0, seconds - elapsed))
    wall = time.monotonic() - began
    progress.update(task, completed=seconds)
    runs = {}
    for name, relay in relays.items():
        cpu, switches = _counters(relay.pid)
        runs[name] = IdleRun(name, wall, cpu - before[name][0], switches - before[name][1])
    return runs


def _counters(pid: int) -> tuple[float, int]:
    return process_seconds(pid), voluntary_switches(pid)


def one_core(
    bench: Runner, agent: AgentProcess, rates: tuple[int, ...], seconds: float, progress: Progress
) -> list[LatencyRun]:
    """The agent pinned to one core at each rate in turn, up to the first it does not sustain."""
    task = progress.add_task(
        f"agent on one core, {', '.join(f'{r:,}' for r in rates)}/s",
        total=sum(int(rate * seconds) for rate in rates),
    )
    allowed = os.sched_getaffinity(0)
    runs: list[LatencyRun] = []
    pin_threads(agent.pid, {min(allowed)})
    try:
        for rate in rates:
            run = bench.latency(agent, "bench/agent", rate, seconds=seconds, task=task)
            runs.append(run)
            if not sustained(run):
                break
    finally:
        pin_threads(agent.pid, allowed)
    progress.update(task, completed=progress.tasks[task].total)
    return runs


def sustained(run: LatencyRun) -> bool:
    """Whether the agent kept up with the rate of `run`."""
    return run.p99 <= SUSTAINED_P99_S and run.achieved_rate >= SUSTAINED_RATE_SHARE * run.rate
