"""The publishing side: 100 concurrent devices spread over a few `bench.publish` processes."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from dataclasses import dataclass
from typing import IO, Any

from bench.layout import REPO

DEVICES = 100
PROCESSES = 4
READY_TIMEOUT_S = 60.0


@dataclass(frozen=True, slots=True)
class Published:
    """What the publishers report: when the first and last readings left, and how many."""

    first: float
    last: float
    sent: int
    acked: int
    cpu_s: float


class Fleet:
    """Start the publisher processes (connected and waiting), then `go()` and `wait()`."""

    def __init__(self, port: int, root: str, total: int, rate: float = 0.0) -> None:
        self._processes: list[subprocess.Popen[str]] = []
        shares = _split(total, PROCESSES)
        per_process = DEVICES // PROCESSES
        try:
            for number, share in enumerate(shares):
                argv = [
                    sys.executable,
                    "-m",
                    "bench.publish",
                    f"--port={port}",
                    f"--root={root}",
                    f"--first={number * per_process}",
                    f"--devices={per_process}",
                    f"--count={share}",
                    f"--rate={rate / PROCESSES}",
                ]
                self._processes.append(
                    subprocess.Popen(
                        argv,
                        stdin=subprocess.PIPE,
                        stdout=subprocess.PIPE,
                        text=True,
                        cwd=REPO,
                    )
                )
            for process in self._processes:
                _expect_ready(process)
        except BaseException:
            self.close()
            raise

    def go(self) -> None:
        for process in self._processes:
            assert process.stdin is not None
            process.stdin.write("go\n")
            process.stdin.flush()

    def wait(self) -> Published:
        """Until every reading was acknowledged by the broker."""
        reports = [_read_json(process.stdout) for process in self._processes]
        for process in self._processes:
            process.wait(30)
        return Published(
            first=min(float(report["first"]) for report in reports),
            last=max(float(report["last"]) for report in reports),
            sent=sum(int(report["sent"]) for report in reports),
            acked=sum(int(report["acked"]) for report in reports),
            cpu_s=sum(float(report["cpu_s"]) for report in reports),
        )

    def close(self) -> None:
        for process in self._processes:
            if process.poll() is None:
                process.kill()
            process.wait()
            for stream in (process.stdin, process.stdout):
                if stream is not None:
                    with contextlib.suppress(OSError):
                        stream.close()


def _split(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if index < total % parts else 0) for index in range(parts)]


def _expect_ready(process: subprocess.Popen[str]) -> None:
    if _read_json(process.stdout).get("ready") is not True:
        raise RuntimeError("a publisher process did not get ready")


def _read_json(stream: IO[str] | None) -> dict[str, Any]:
    assert stream is not None
    line = stream.readline()
    if not line:
        raise RuntimeError("a publisher process exited early")
    return dict(json.loads(line))
