"""Failpoints for crash tests: kill the agent at an exact step of the delivery path.

`FARM_AGENT_FAILPOINTS="after_spool_commit=3"` SIGKILLs the process the third time
the spool commits a batch, before its PUBACKs go out. Unset (always, in production),
a failpoint costs one dictionary lookup.
"""

from __future__ import annotations

import os
import signal

ENV = "FARM_AGENT_FAILPOINTS"


def _parse(spec: str) -> dict[str, int]:
    points: dict[str, int] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        name, _, hits = item.partition("=")
        points[name] = int(hits or "1")
    return points


_remaining = _parse(os.environ.get(ENV, ""))


def failpoint(name: str) -> None:
    """Die here, without any clean-up, when the environment asks for it."""
    if name not in _remaining:
        return
    _remaining[name] -= 1
    if _remaining[name] <= 0:
        os.kill(os.getpid(), signal.SIGKILL)
