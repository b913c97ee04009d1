"""What a process costs: resident memory, read from /proc."""

from __future__ import annotations

import contextlib
import os


def _status_field(field: str, pid: int | None) -> int:
    path = f"/proc/{pid if pid is not None else os.getpid()}/status"
    try:
        with open(path) as status:
            for line in status:
                if line.startswith(field):
                    return int(line.split()[1]) * 1024
    except OSError:
        return 0
    return 0


def rss_bytes(pid: int | None = None) -> int:
    """Resident set size of a process (this one by default), in bytes; 0 if it is gone."""
    return _status_field("VmRSS:", pid)


def peak_rss_bytes(pid: int | None = None) -> int:
    """The highest RSS since the process started or `reset_peak_rss()`, in bytes."""
    return _status_field("VmHWM:", pid)


def reset_peak_rss() -> None:
    """Start measuring this process's peak RSS afresh (Linux: clear_refs 5)."""
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")


def voluntary_switches(pid: int) -> int:
    """Voluntary context switches of all of a process's threads: how often they went to sleep.

    A thread that sleeps and is woken (a timer, a packet, another thread) counts one;
    /proc/<pid>/status alone would count only the main thread.
    """
    total = 0
    try:
        threads = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return 0
    for thread in threads:
        try:
            with open(f"/proc/{pid}/task/{thread}/status") as status:
                for line in status:
                    if line.startswith("voluntary_ctxt_switches:"):
                        total += int(line.split()[1])
        except OSError:
            continue  # the thread ended meanwhile
    return total


def pin_threads(pid: int, cpus: set[int]) -> None:
    """Run every thread of a process on `cpus` only (as `taskset -a -p`); new threads inherit it."""
    for thread in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(ProcessLookupError):
            os.sched_setaffinity(int(thread), cpus)
