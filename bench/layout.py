"""Where things are: the repository root and the bench folder."""

from __future__ import annotations

import compileall
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent


def byte_compile() -> None:
    """Write the .pyc files of the agent and the baselines, as `pip install` does.

    A machine with PYTHONDONTWRITEBYTECODE set (this one is) would otherwise make every
    start compile each module from source, which costs time and leaves ~0.6 MB of the
    compiler's memory in the agent's RSS that an installed agent never has.
    """
    for folder in (REPO / "agent" / "farm_agent", BENCH):
        compileall.compile_dir(folder, quiet=1)
