"""What a process costs: resident memory, read from /proc."""

from __future__ import annotations

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
