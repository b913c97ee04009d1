"""Counting the integration's own work, to show how it grows: never a clock, only steps.

`WorkCounter` counts, through `sys.monitoring` (PEP 669), every line the
integration's code executes plus every jump (each loop iteration is one), and
nothing of Home Assistant's. A scan over all tracked entities therefore shows
as at least one step per entity, whatever the machine's speed.
"""

from __future__ import annotations

import sys
from pathlib import Path
from types import CodeType, TracebackType
from typing import Any

import custom_components.farm_resilience as integration

PACKAGE = str(Path(integration.__file__).parent) + "/"
# A tool id that Python leaves free (0-2 and 5 are the debugger, coverage, profiler, optimizer).
TOOL_ID = 4

monitoring = sys.monitoring


class WorkCounter:
    """Counts the integration's executed lines and jumps while active (`with counter: ...`)."""

    def __init__(self) -> None:
        """Start at zero, not counting."""
        self.steps = 0
        self._mine: dict[CodeType, bool] = {}
        self.by_code: dict[str, int] = {}

    def _step(self, code: CodeType, *_: int) -> Any:
        """Count a step of the integration; switch the event off for anyone else's code."""
        mine = self._mine.get(code)
        if mine is None:
            mine = self._mine[code] = code.co_filename.startswith(PACKAGE)
        if not mine:
            return monitoring.DISABLE
        self.steps += 1
        key = f"{code.co_filename.rsplit('/', 1)[-1]}:{code.co_qualname}"
        self.by_code[key] = self.by_code.get(key, 0) + 1
        return None

    def top(self, count: int = 8) -> list[tuple[str, int]]:
        """Return where most of the work went: (file:function, steps), most first."""
        return sorted(self.by_code.items(), key=lambda item: -item[1])[:count]

    def __enter__(self) -> WorkCounter:
        """Start counting."""
        monitoring.use_tool_id(TOOL_ID, "farm_resilience work counter")
        events = monitoring.events.LINE | monitoring.events.JUMP
        monitoring.register_callback(TOOL_ID, monitoring.events.LINE, self._step)
        monitoring.register_callback(TOOL_ID, monitoring.events.JUMP, self._step)
        monitoring.set_events(TOOL_ID, events)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Stop counting and give the tool id back."""
        monitoring.set_events(TOOL_ID, 0)
        monitoring.free_tool_id(TOOL_ID)
        # Events switched off for other code stay off for this tool id otherwise.
        monitoring.restart_events()
