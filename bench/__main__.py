"""`make bench`: run every benchmark on throwaway services and write bench/RESULTS.md.

`BENCH_QUICK=1` runs a smoke version with smaller numbers (about 2 minutes) and
writes bench/RESULTS-quick.md instead; `BENCH_RESULTS=path` writes elsewhere.
"""

from __future__ import annotations

import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from bench import home_assistant, machine, report, settings
from bench.layout import byte_compile
from bench.relay import RelayBench
from bench.tasks import TaskBench


def _interrupt(signum: int, frame: FrameType | None) -> None:
    # SIGTERM as Ctrl-C: every `finally` runs and the services and processes go.
    raise KeyboardInterrupt


def main() -> int:
    signal.signal(signal.SIGTERM, _interrupt)
    config = settings.load()
    byte_compile()
    console = Console(stderr=True)
    started = time.monotonic()
    folder = Path(tempfile.mkdtemp(prefix="farm-bench-"))
    progress = Progress(
        TextColumn("{task.description:<58}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
    )
    try:
        with progress:
            relay = RelayBench(config.relay, progress, folder).run()
            ha = home_assistant.run(config.ha, progress)
            tasks = TaskBench(config.tasks, progress).run()
        described = machine.describe(relay.postgres_version, folder)
    except KeyboardInterrupt:
        console.print("interrupted; services and processes stopped")
        return 130
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    text = report.render(
        config, described, relay, ha, tasks=tasks, elapsed_s=time.monotonic() - started
    )
    Path(config.output).write_text(text)
    console.print(text.split("## Relay throughput")[0])
    console.print(f"written to {config.output} in {(time.monotonic() - started) / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
