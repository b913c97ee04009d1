"""Figures for /metrics kept as plain numbers; prometheus_client renders them when read.

prometheus_client's package loads its whole HTTP exposition on import (http.server,
wsgiref, urllib.request, gzip): about 1.5 MB that a daemon on a Raspberry Pi carried
for nothing on the many farms that never scrape /metrics. It is imported (on a thread)
at the first scrape and does the text format as before; here a count is an addition,
where a prometheus_client metric takes a lock per update.

Every figure moves on the event loop's thread, as do the scrapes: nothing here locks.
"""

from __future__ import annotations

import asyncio
import importlib
import sys
import time
from bisect import bisect_left
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

_RENDERER = "farm_agent.exposition"


class Counter:
    """A count that only goes up, and when it started."""

    __slots__ = ("created", "value")

    def __init__(self) -> None:
        self.value = 0.0
        self.created = time.time()

    def inc(self, amount: float = 1) -> None:
        if amount < 0:
            raise ValueError(f"a counter only goes up, not by {amount}")
        self.value += amount


class Gauge:
    """A value that is set (NaN while it is not known)."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def set(self, value: float) -> None:
        self.value = float(value)


class Histogram:
    """Observations counted by upper bound (le), with their sum."""

    __slots__ = ("bounds", "counts", "created", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        # One count per bound, then +Inf; each bucket alone, made cumulative when read.
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0
        self.created = time.time()

    def observe(self, value: float, count: int = 1) -> None:
        """`count` observations of `value` (readings committed together waited alike)."""
        self.counts[bisect_left(self.bounds, value)] += count
        self.sum += value * count


Child = TypeVar("Child", Counter, Gauge, Histogram)


class Labelled(Generic[Child]):
    """One figure per combination of label values, made on first use."""

    def __init__(self, label_names: tuple[str, ...], make: Callable[[], Child]) -> None:
        self.label_names = label_names
        self.children: dict[tuple[str, ...], Child] = {}
        self._make: Callable[[], Child] = make

    def child(self, values: tuple[str, ...]) -> Child:
        """The figure of these label values, in order: one lookup, for figures moved per task."""
        child = self.children.get(values)
        return self.labels(*values) if child is None else child

    def labels(self, *values: object, **named: object) -> Child:
        if named:
            if values or set(named) != set(self.label_names):
                raise ValueError(f"labels {sorted(named)} given, {list(self.label_names)} expected")
            values = tuple(named[name] for name in self.label_names)
        elif len(values) != len(self.label_names):
            raise ValueError(f"{len(values)} label values given, {list(self.label_names)} expected")
        key = tuple(str(value) for value in values)
        child = self.children.get(key)
        if child is None:
            child = self.children[key] = self._make()
        return child


@dataclass(frozen=True, slots=True)
class Family:
    """A metric as /metrics shows it: its name, help, kind and figures by label values."""

    name: str
    documentation: str
    kind: str
    label_names: tuple[str, ...]
    children: Mapping[tuple[str, ...], Counter | Gauge | Histogram] = field(repr=False)
    info: Mapping[str, str] | None = None


class Metrics:
    """The figures of one process, in the order they were made (each agent has its own)."""

    def __init__(self) -> None:
        self._families: dict[str, Family] = {}

    def counter(self, name: str, documentation: str) -> Counter:
        return self._single(name, documentation, "counter", Counter())

    def gauge(self, name: str, documentation: str) -> Gauge:
        return self._single(name, documentation, "gauge", Gauge())

    def histogram(self, name: str, documentation: str, buckets: Sequence[float]) -> Histogram:
        return self._single(name, documentation, "histogram", Histogram(_bounds(name, buckets)))

    def labelled_counter(
        self, name: str, documentation: str, labels: Sequence[str]
    ) -> Labelled[Counter]:
        return self._labelled(name, documentation, "counter", labels, Counter)

    def labelled_gauge(
        self, name: str, documentation: str, labels: Sequence[str]
    ) -> Labelled[Gauge]:
        return self._labelled(name, documentation, "gauge", labels, Gauge)

    def labelled_histogram(
        self, name: str, documentation: str, labels: Sequence[str], buckets: Sequence[float]
    ) -> Labelled[Histogram]:
        bounds = _bounds(name, buckets)
        return self._labelled(name, documentation, "histogram", labels, lambda: Histogram(bounds))

    def info(self, name: str, documentation: str, values: Mapping[str, str]) -> None:
        """`name_info{key="value",…} 1`: what is running, e.g. its version."""
        self._add(Family(name, documentation, "info", (), {}, dict(values)))

    def families(self) -> Iterator[Family]:
        return iter(self._families.values())

    @staticmethod
    async def load_renderer() -> None:
        """Import prometheus_client on a thread, once, before the first render.

        Its imports take a tenth of a second, more on a Pi: on the event loop they would
        hold up the relay at the first scrape.
        """
        if _RENDERER not in sys.modules:
            await asyncio.to_thread(importlib.import_module, _RENDERER)

    def render(self) -> tuple[bytes, str]:
        """The Prometheus text format and its content type (loads prometheus_client)."""
        from farm_agent.exposition import render  # noqa: PLC0415 - loaded on the first scrape

        return render(self)

    def _single(self, name: str, documentation: str, kind: str, figure: Child) -> Child:
        self._add(Family(name, documentation, kind, (), {(): figure}))
        return figure

    def _labelled(
        self,
        name: str,
        documentation: str,
        kind: str,
        labels: Sequence[str],
        make: Callable[[], Child],
    ) -> Labelled[Child]:
        labelled = Labelled(tuple(labels), make)
        self._add(Family(name, documentation, kind, labelled.label_names, labelled.children))
        return labelled

    def _add(self, family: Family) -> None:
        if family.name in self._families:
            raise ValueError(f"metric {family.name} is already defined")
        self._families[family.name] = family


def _bounds(name: str, buckets: Sequence[float]) -> tuple[float, ...]:
    bounds = tuple(float(bound) for bound in buckets if bound != float("inf"))
    if not bounds or list(bounds) != sorted(set(bounds)):
        raise ValueError(f"metric {name}: buckets must be distinct and in increasing order")
    return bounds
