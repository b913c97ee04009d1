"""Bounds on lists of texts that reach entity attributes, events and the recorder.

An agent may report any number of problems of any length, and a farm may have
hundreds of devices down at once: every such list is cut to `MAX_TEXTS` entries
of at most `MAX_CHARS` characters, the last entry saying how many were left out.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from itertools import islice

MAX_TEXTS = 20
MAX_CHARS = 200
ELLIPSIS = "…"


def cut(text: str, width: int = MAX_CHARS) -> str:
    """Return `text` cut to `width` characters, ending in an ellipsis when cut."""
    return text if len(text) <= width else text[: width - len(ELLIPSIS)] + ELLIPSIS


@dataclass(frozen=True, slots=True)
class Texts:
    """The first texts of a list (no more than are ever shown) and how long the list is."""

    first: tuple[str, ...]
    total: int

    @classmethod
    def of(cls, texts: Iterable[str], total: int) -> Texts:
        """Take only the texts that can be shown: the work does not grow with `total`."""
        return cls(tuple(islice(texts, MAX_TEXTS)), total)

    @classmethod
    def from_list(cls, texts: list[str]) -> Texts:
        """Return the texts of a list already built."""
        return cls.of(texts, len(texts))


def bounded(parts: Iterable[Texts]) -> list[str]:
    """Return the parts' texts in order: at most `MAX_TEXTS`, each cut to `MAX_CHARS`.

    When texts are left out, the last entry is "and N more" in place of one text.
    """
    shown: list[str] = []
    total = 0
    for part in parts:
        total += part.total
        shown.extend(part.first[: MAX_TEXTS + 1 - len(shown)])
    if total > MAX_TEXTS:
        shown = [*shown[: MAX_TEXTS - 1], f"and {total - (MAX_TEXTS - 1)} more"]
    return [cut(text) for text in shown]
