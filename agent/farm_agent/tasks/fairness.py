"""Which queue a worker reads first: high before normal before low, but nobody waits forever.

Strict priority alone starves a low task for as long as high tasks keep coming. So every
`check_every_s` (a tenth of `tasks.max_wait_s`, within 50 ms and 5 s) the worker asks each
lower queue how many of its first visible tasks have waited half of `max_wait_s`; those
are read before anything else, up to the worker's concurrency per queue and check. A low
task therefore starts within about 0.6 * max_wait_s plus the time a slot takes to free
up, however many high tasks arrive, while the high tasks keep every other slot.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

MIN_CHECK_S = 0.05
MAX_CHECK_S = 5.0


@dataclass(slots=True)
class FairOrder:
    """The reading order: overdue queues (with their quota) first, then by priority."""

    # Highest priority first; every queue but the first can be overdue.
    queues: tuple[str, ...]
    max_wait_s: float
    _quota: dict[str, int] = field(default_factory=dict)
    _checked_at: float = float("-inf")

    @property
    def overdue_after_s(self) -> float:
        return self.max_wait_s / 2

    @property
    def check_every_s(self) -> float:
        return min(MAX_CHECK_S, max(MIN_CHECK_S, self.max_wait_s / 10))

    @property
    def lower_queues(self) -> tuple[str, ...]:
        """The queues that can be overdue: all but the highest priority."""
        return self.queues[1:]

    def due(self, now: float) -> bool:
        """Whether it is time to count the overdue tasks again."""
        return now - self._checked_at >= self.check_every_s

    def checked(self, now: float, overdue: Mapping[str, int]) -> None:
        """The counts just read: until the next check, that many go first from each queue."""
        self._checked_at = now
        self._quota = {queue: count for queue, count in overdue.items() if count > 0}

    def plan(self) -> list[tuple[str, int | None]]:
        """Each queue once, in reading order, with the most to take from it (None: no limit).

        An overdue queue read first is not read again in the same round.
        """
        first: list[tuple[str, int | None]] = [
            (queue, self._quota[queue]) for queue in self.lower_queues if queue in self._quota
        ]
        rest = [(queue, None) for queue in self.queues if queue not in self._quota]
        return [*first, *rest]

    def took(self, queue: str, wanted: int, count: int, limit: int | None) -> None:
        """A read of `wanted` from `queue` under `limit` (a quota if not None) got `count`."""
        if limit is None or queue not in self._quota:
            return
        left = self._quota[queue] - count
        # Fewer than asked for: the overdue ones are gone (another worker took them).
        if left > 0 and count == wanted:
            self._quota[queue] = left
        else:
            del self._quota[queue]
