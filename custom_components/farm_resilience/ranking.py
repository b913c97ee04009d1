"""Entities ranked by their window figures, kept up to date one entity at a time.

The hub shows the worst offenders and names every entity below the success
target after each outcome. Sorting every entity each time would cost work in
proportion to all entities with history; here each change re-ranks one entity
with two binary searches (plus a C-level move of the list's tail), and reading
the ranking costs only what it returns.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from dataclasses import dataclass

from .evidence import ENTITY_CONFIDENCE, below_target


@dataclass(frozen=True, slots=True)
class EntityFigures:
    """How one entity did over the window."""

    entity_id: str
    commands: int
    failed: int

    @property
    def success_rate(self) -> float:
        """Return the percentage of counted commands that succeeded."""
        return 100.0 * (self.commands - self.failed) / self.commands


# Worst first: lowest success rate, then most failures, then by entity id.
type _RankKey = tuple[float, int, str]


def _rank_key(figures: EntityFigures) -> _RankKey:
    """Return the sort key of an entity that failed at least once."""
    return (figures.success_rate, -figures.failed, figures.entity_id)


class EntityRanking:
    """The entities with failures, worst first, and those below the success target."""

    def __init__(self, min_samples: int, success_target: float) -> None:
        """Start empty.

        An entity is below target with at least `min_samples` commands whose failures
        show it with `ENTITY_CONFIDENCE` (evidence.py): a lower rate alone is no proof.
        """
        self.min_samples = min_samples
        self.success_target = success_target
        self._keys: list[_RankKey] = []
        self._figures: dict[str, EntityFigures] = {}
        self._below: set[str] = set()

    def update(self, entity_id: str, commands: int, failed: int) -> None:
        """Re-rank one entity after its window figures changed (0 commands: forget it)."""
        if (old := self._figures.pop(entity_id, None)) is not None:
            del self._keys[bisect_left(self._keys, _rank_key(old))]
            self._below.discard(entity_id)
        if not failed:
            return
        figures = self._figures[entity_id] = EntityFigures(entity_id, commands, failed)
        insort(self._keys, _rank_key(figures))
        if commands >= self.min_samples and below_target(
            commands, failed, self.success_target, ENTITY_CONFIDENCE
        ):
            self._below.add(entity_id)

    def worst(self, limit: int) -> list[EntityFigures]:
        """Return up to `limit` entities with failures, worst first."""
        return [self._figures[entity_id] for _, _, entity_id in self._keys[:limit]]

    def below_target(self) -> list[EntityFigures]:
        """Return the entities below the success target with enough commands, worst first."""
        return sorted((self._figures[e] for e in self._below), key=_rank_key)

    def clear(self) -> None:
        """Forget every entity."""
        self._keys.clear()
        self._figures.clear()
        self._below.clear()
