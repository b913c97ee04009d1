"""Commands waiting for their result: one per entity, their deadlines in a heap.

The sweep looks only at what is due: a command that ended otherwise leaves its
heap entry behind until that deadline comes up (at most one per command).
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterator, Mapping

from .commands import PendingCommand


class PendingCommands(Mapping[str, PendingCommand]):
    """The pending command of each entity that has one, by entity id."""

    def __init__(self) -> None:
        """Start with nothing pending."""
        self._by_entity: dict[str, PendingCommand] = {}
        self._deadlines: list[tuple[float, int, PendingCommand]] = []
        self._order = itertools.count()

    def __getitem__(self, entity_id: str) -> PendingCommand:
        """Return the entity's pending command."""
        return self._by_entity[entity_id]

    def __iter__(self) -> Iterator[str]:
        """Iterate over the entities with a pending command."""
        return iter(self._by_entity)

    def __len__(self) -> int:
        """Return how many commands are pending."""
        return len(self._by_entity)

    def add(self, command: PendingCommand) -> float:
        """Wait for the command's result; return its deadline (monotonic)."""
        self._by_entity[command.entity_id] = command
        heapq.heappush(self._deadlines, (command.deadline, next(self._order), command))
        return command.deadline

    def pop(self, entity_id: str) -> PendingCommand | None:
        """Stop waiting for the entity's command and return it, if it has one."""
        return self._by_entity.pop(entity_id, None)

    def end(self, command: PendingCommand) -> None:
        """Stop waiting for `command`, if it is still its entity's pending command."""
        if self._by_entity.get(command.entity_id) is command:
            del self._by_entity[command.entity_id]

    def rename(self, old: str, new: str) -> PendingCommand | None:
        """Move a renamed entity's pending command to its new id; return it, if any."""
        if (command := self._by_entity.pop(old, None)) is not None:
            command.entity_id = new
            self._by_entity[new] = command
        return command

    def expired(self, now: float) -> PendingCommand | None:
        """Stop waiting for the next command past its deadline as of `now`, and return it."""
        while self._deadlines and self._deadlines[0][0] <= now:
            command = heapq.heappop(self._deadlines)[2]
            if self._by_entity.get(command.entity_id) is command:
                del self._by_entity[command.entity_id]
                return command
        return None

    def next_deadline(self) -> float | None:
        """Return the earliest deadline of a command still pending, None when there is none."""
        deadlines = self._deadlines
        # Entries of commands that ended otherwise need no wake-up of their own.
        while deadlines and self._by_entity.get(deadlines[0][2].entity_id) is not deadlines[0][2]:
            heapq.heappop(deadlines)
        return deadlines[0][0] if deadlines else None

    def clear(self) -> None:
        """Forget every pending command."""
        self._by_entity.clear()
        self._deadlines.clear()
