"""Runs the Home Assistant benchmarks (`bench.ha`) in processes of their own, with progress."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Any

from rich.progress import Progress, TaskID

from bench.layout import REPO
from bench.settings import HaSettings


@dataclass
class HaResults:
    overhead: dict[str, Any] = field(default_factory=dict)
    memory: list[dict[str, Any]] = field(default_factory=list)
    stale: dict[str, Any] = field(default_factory=dict)
    version: str = ""


def _run(argv: list[str], progress: Progress, task: TaskID, base: float) -> dict[str, Any]:
    """Run `python -m bench.ha …`, moving the bar with its progress lines; its result."""
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.ha", *argv],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    result: dict[str, Any] | None = None
    assert process.stdout is not None
    try:
        with process.stdout:
            for line in process.stdout:
                message = json.loads(line)
                if "progress" in message:
                    progress.update(task, completed=base + message["progress"])
                elif "result" in message:
                    result = message["result"]
    finally:
        if process.poll() is None and result is None:
            # Interrupted: SIGINT lets HA stop and remove its config folder.
            process.send_signal(signal.SIGINT)
    if process.wait() != 0 or result is None:
        raise RuntimeError(f"python -m bench.ha {' '.join(argv)} failed ({process.returncode})")
    return result


def run(settings: HaSettings, progress: Progress) -> HaResults:
    from homeassistant.const import __version__  # noqa: PLC0415 - heavy, only here

    results = HaResults(version=__version__)
    total = settings.runs * (3 * settings.writes + 2 * settings.commands)
    task = progress.add_task(
        f"Home Assistant, {settings.writes:,} writes x {settings.runs} runs x 3", total=total
    )
    results.overhead = _run(
        [
            "overhead",
            f"--entities={settings.entities}",
            f"--writes={settings.writes}",
            f"--commands={settings.commands}",
            f"--runs={settings.runs}",
        ],
        progress,
        task,
        0,
    )
    task = progress.add_task(
        f"HA memory, {settings.memory_entities:,} entities, {settings.memory_outcomes:,} outcomes",
        total=settings.memory_runs * settings.memory_outcomes,
    )
    for run in range(settings.memory_runs):
        results.memory.append(
            _run(
                [
                    "memory",
                    f"--entities={settings.memory_entities}",
                    f"--outcomes={settings.memory_outcomes}",
                ],
                progress,
                task,
                run * settings.memory_outcomes,
            )
        )
    task = progress.add_task(
        f"HA stale sensors, {settings.stale_sensors:,} reporting x {settings.stale_runs} runs",
        total=settings.stale_runs,
    )
    results.stale = _run(
        ["stale", f"--sensors={settings.stale_sensors}", f"--runs={settings.stale_runs}"],
        progress,
        task,
        0,
    )
    return results
