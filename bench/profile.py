"""Where a relay's CPU goes, by thread and by component: py-spy samples of a throughput run.

Optional: py-spy is not among the project's dependencies (`.venv/bin/pip install
py-spy` adds it) and needs the right to trace the process (root, or ptrace allowed).
Without it the report says so and the rest of the benchmark is unchanged. The
profiled run is an extra one, never one of the measured runs: sampling slows the
process it samples.
"""

from __future__ import annotations

import collections
import contextlib
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

SAMPLES_PER_S = 100
# Where a sample's innermost Python frame lies -> the component it is charged to.
COMPONENTS = (
    ("paho/", "paho-mqtt (MQTT client)"),
    ("farm_agent/spool.py", "agent: spool (SQLite, sync per commit)"),
    ("farm_agent/ingest.py", "agent: ingest"),
    ("farm_agent/forward.py", "agent: forward"),
    ("farm_agent/envelope.py", "agent: envelope (JSON)"),
    ("farm_agent/metrics.py", "agent: metrics"),
    ("farm_agent/", "agent: other"),
    ("bench/baseline.py", "baseline relay"),
    ("asyncpg/", "asyncpg"),
    ("prometheus_client/", "prometheus_client"),
    ("json/", "json"),
    ("asyncio/", "asyncio event loop"),
    ("selectors.py", "asyncio event loop"),
    ("concurrent/futures/", "thread pool"),
    ("threading.py", "thread pool"),
)
NO_PYTHON_FRAME = "(native code, no Python frame)"
_FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def py_spy() -> str | None:
    """The py-spy next to this Python, or on the PATH."""
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy")


@dataclass(frozen=True, slots=True)
class Profile:
    samples: int
    threads: list[tuple[str, float]]
    components: list[tuple[str, float]]
    functions: list[tuple[str, float]]


@contextlib.contextmanager
def recording(pid: int, output: Path) -> Iterator[None]:
    """Sample every thread of `pid` while the block runs (py-spy, collapsed stacks)."""
    binary = py_spy()
    assert binary is not None
    spy = subprocess.Popen(
        [
            binary,
            "record",
            "--pid",
            str(pid),
            "--threads",
            "--nonblocking",
            "--rate",
            str(SAMPLES_PER_S),
            "--format",
            "raw",
            "--output",
            str(output),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield
    finally:
        spy.send_signal(signal.SIGINT)
        try:
            spy.wait(30)
        except subprocess.TimeoutExpired:
            spy.kill()
            spy.wait()


def _component(frame: str) -> str:
    match = _FRAME.match(frame)
    path = match.group("file") if match else frame
    for marker, name in COMPONENTS:
        if marker in path:
            return name
    return "other"


def _short(frame: str) -> str:
    match = _FRAME.match(frame)
    if not match:
        return frame
    path = "/".join(match.group("file").split("/")[-2:])
    return f"{match.group('function')} ({path})"


def summarise(raw: Path, top: int = 12) -> Profile | None:
    """Shares of samples per thread, per component and per innermost function."""
    if not raw.exists():
        return None
    threads: collections.Counter[str] = collections.Counter()
    components: collections.Counter[str] = collections.Counter()
    functions: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        thread = frames[0].split("): ", 1)[-1]
        # Thread names end in a number that changes from run to run.
        threads[re.sub(r"[-_]\d+$", "", thread)] += count
        if len(frames) > 1:
            components[_component(frames[-1])] += count
            functions[_short(frames[-1])] += count
        else:
            components[NO_PYTHON_FRAME] += count
            functions[NO_PYTHON_FRAME] += count
        total += count
    if not total:
        return None
    return Profile(
        samples=total,
        threads=[(name, count / total) for name, count in threads.most_common()],
        components=[(name, count / total) for name, count in components.most_common()],
        functions=[(name, count / total) for name, count in functions.most_common(top)],
    )
