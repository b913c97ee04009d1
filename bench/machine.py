"""The machine, the software and the commit a run was measured on."""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from bench.layout import REPO


@dataclass(frozen=True, slots=True)
class Machine:
    date: str
    commit: str
    hardware: str
    software: str
    spool_disk: str


def stamp() -> str:
    """When and at which commit: for a part measured on its own."""
    return f"{datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}, commit {_commit()}"


def _run(*argv: str) -> str:
    try:
        result = subprocess.run(argv, capture_output=True, text=True, check=False, cwd=REPO)
    except OSError:
        return ""
    return (result.stdout or result.stderr).rstrip()


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def _memory_gb() -> float:
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024 / 1e9
    return 0.0


def _commit() -> str:
    commit = _run("git", "rev-parse", "--short", "HEAD").strip() or "unknown"
    # Others work in the same checkout: say which files outside bench/ differed.
    changed = [
        line[3:]
        for line in _run("git", "status", "--porcelain").splitlines()
        if line[3:] and not line[3:].startswith("bench/")
    ]
    if not changed:
        return commit
    return (
        f"{commit} with {len(changed)} uncommitted changes outside bench/ "
        f"(measured as checked out): {', '.join(sorted(changed))}"
    )


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "?"


def _tool_version(argv: list[str]) -> str:
    binary = shutil.which(argv[0]) or shutil.which(argv[0], path="/usr/sbin:/usr/local/sbin")
    if binary is None:
        return "?"
    text = _run(binary, *argv[1:]).strip()
    return text.splitlines()[0] if text else "?"


def describe(postgres_version: str, spool_folder: Path) -> Machine:
    cores = os.cpu_count() or 0
    mosquitto = _tool_version(["mosquitto", "-h"]).replace("mosquitto version ", "")
    pgbouncer = _tool_version(["pgbouncer", "--version"]).replace("PgBouncer ", "")
    software = (
        f"Python {platform.python_version()}, PostgreSQL {postgres_version.split(maxsplit=1)[0]}, "
        f"PGMQ {_version('pgmq')}, PgBouncer {pgbouncer}, Mosquitto {mosquitto}, "
        f"Home Assistant {_version('homeassistant')}, paho-mqtt {_version('paho-mqtt')}, "
        f"asyncpg {_version('asyncpg')}"
    )
    disk = _run("df", "--output=source,fstype", str(spool_folder)).splitlines()
    return Machine(
        date=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        commit=_commit(),
        hardware=(
            f"{_cpu_model()}, {cores} cores, {_memory_gb():.1f} GB RAM, Linux {platform.release()}"
        ),
        software=software,
        spool_disk=" ".join(disk[-1].split()) if disk else "?",
    )
