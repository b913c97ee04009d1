"""Where the CPU went during a run: per process (all threads, and reaped children), from /proc.

A profile at the level that matters on 2 cores: if the machine was busy all the time,
a faster relay needs fewer CPU-seconds per reading, and this says whose they are.
"""

from __future__ import annotations

import ctypes
import os
import time
from dataclasses import dataclass
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")
_LIBC = ctypes.CDLL(None, use_errno=True)
# Entries of a CPU account that are not CPU seconds of a part.
NOT_PARTS = ("machine_busy", "busy_s", "wall_s")


def machine_ticks() -> tuple[int, int]:
    """(busy, total) clock ticks of all CPUs since boot, from /proc/stat."""
    with open("/proc/stat") as stat:
        fields = [int(value) for value in stat.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    total = sum(fields[:8])  # guest time is already counted in user
    return total - idle, total


def process_seconds(pid: int) -> float:
    """User + system CPU seconds of a process, every thread (the exited ones too); 0 if gone.

    From the process's CPU clock, in nanoseconds: /proc's clock ticks are 10 ms, a
    tenth of what a relay spends in a second at 100 readings/s, too coarse for a CPU
    per reading.
    """
    clock = ctypes.c_int()
    if _LIBC.clock_getcpuclockid(pid, ctypes.byref(clock)) != 0:
        return tick_seconds(pid)
    try:
        return time.clock_gettime(clock.value)
    except OSError:
        return 0.0


def tick_seconds(pid: int, *, with_children: bool = False) -> float:
    """The same in /proc's clock ticks; optionally with the children it reaped (0 if gone)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = text.rsplit(")", 1)[1].split()
    # After the command: state is field 3, utime 14, stime 15, cutime 16, cstime 17.
    ticks = int(fields[11]) + int(fields[12])
    if with_children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / TICKS


def find_processes(marker: str) -> list[int]:
    """Processes whose command line contains `marker` (e.g. a service's config path)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if marker in command:
            found.append(int(entry.name))
    return found


def children(parent: int) -> list[int]:
    found = []
    for entry in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = entry.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == parent:
            found.append(int(entry.parent.name))
    return found


@dataclass(frozen=True, slots=True)
class CpuSnapshot:
    machine: tuple[int, int]
    processes: dict[str, float]


class CpuMeter:
    """CPU seconds of named groups of processes between `start()` and `stop()`."""

    def __init__(self, groups: dict[str, list[int]], trees: dict[str, int]) -> None:
        # groups: names -> pids measured alone; trees: names -> a parent measured with
        # its live children and the ones it reaped (PostgreSQL's backends).
        self._groups = groups
        self._trees = trees
        self._start: CpuSnapshot | None = None
        self._started_at = 0.0

    def _snapshot(self) -> CpuSnapshot:
        processes = {
            name: sum(process_seconds(pid) for pid in pids) for name, pids in self._groups.items()
        }
        for name, parent in self._trees.items():
            # In ticks throughout: a backend counted live at the start and reaped by the
            # end is then counted alike in both.
            processes[name] = tick_seconds(parent, with_children=True) + sum(
                tick_seconds(child) for child in children(parent)
            )
        return CpuSnapshot(machine_ticks(), processes)

    def start(self) -> None:
        self._start = self._snapshot()
        self._started_at = time.monotonic()

    def stop(self) -> dict[str, float]:
        """CPU seconds per group since `start()`, `machine_busy` (0-1, all cores), `busy_s`."""
        assert self._start is not None
        end = self._snapshot()
        used = {
            name: end.processes[name] - self._start.processes.get(name, 0.0)
            for name in end.processes
        }
        busy = end.machine[0] - self._start.machine[0]
        total = end.machine[1] - self._start.machine[1]
        used["machine_busy"] = busy / total if total else 0.0
        used["busy_s"] = busy / TICKS
        used["wall_s"] = time.monotonic() - self._started_at
        return used


def add_others(used: dict[str, float], **measured_elsewhere: float) -> dict[str, float]:
    """Add parts measured elsewhere and `others`: busy CPU no part of the benchmark used."""
    used = {**used, **measured_elsewhere}
    ours = sum(value for name, value in used.items() if name not in NOT_PARTS)
    used["others"] = max(0.0, used["busy_s"] - ours)
    return used


def others_share(used: dict[str, float]) -> float:
    """The share of the whole machine (all cores) that other processes took during a run."""
    capacity = used.get("wall_s", 0.0) * (os.cpu_count() or 1)
    return used.get("others", 0.0) / capacity if capacity else 0.0
