"""Command statistics over a sliding window, in bounded memory.

Outcomes are counted in time buckets (one per `BUCKET_SECONDS`); each bucket
holds the outcome counts and a log-scale histogram of success latencies, never
the commands themselves. Memory therefore depends on the window length and the
number of entities, not on the number of commands.

Error bounds:
- window edge: the oldest bucket is kept while it overlaps the window, so the
  window may include up to `BUCKET_SECONDS` of extra history (entity figures:
  up to one entity span, `window / ENTITY_SPANS`).
- latency quantiles: a bin spans [x, x * HISTOGRAM_RATIO). The estimate is
  interpolated inside the bin that holds the nearest-rank quantile sample
  (the ceil(q * n)-th smallest latency), so it is within
  `max(HISTOGRAM_RATIO - 1, HISTOGRAM_MIN_S / true value)` of it: 5 % of
  the true value, or 10 ms below 10 ms.
"""

from __future__ import annotations

import math
from array import array
from collections import deque
from dataclasses import dataclass
from typing import Any

from .const import (
    DEFAULT_MIN_SAMPLES,
    DEFAULT_SUCCESS_TARGET,
    OUTCOME_SUCCESS,
    OUTCOME_TIMEOUT,
    OUTCOME_UNAVAILABLE,
    OUTCOMES,
)
from .ranking import EntityFigures, EntityRanking

BUCKET_SECONDS = 300
ENTITY_SPANS = 12
HISTOGRAM_MIN_S = 0.01
HISTOGRAM_MAX_S = 3600.0
HISTOGRAM_RATIO = 1.05
_LOG_RATIO = math.log(HISTOGRAM_RATIO)
# Bin 0 holds [0, MIN); bins 1..N are log-spaced; the last holds everything past MAX.
_LOG_BINS = math.ceil(math.log(HISTOGRAM_MAX_S / HISTOGRAM_MIN_S) / _LOG_RATIO)
HISTOGRAM_BINS = _LOG_BINS + 2
_OUTCOME_INDEX = {outcome: index for index, outcome in enumerate(OUTCOMES)}
_FAILED = (_OUTCOME_INDEX[OUTCOME_TIMEOUT], _OUTCOME_INDEX[OUTCOME_UNAVAILABLE])
_SUCCESS = _OUTCOME_INDEX[OUTCOME_SUCCESS]


def latency_bin(latency_s: float) -> int:
    """Return the histogram bin of a latency."""
    if latency_s < HISTOGRAM_MIN_S:
        return 0
    return min(1 + int(math.log(latency_s / HISTOGRAM_MIN_S) / _LOG_RATIO), HISTOGRAM_BINS - 1)


def quantile(histogram: array[int], q: float) -> float | None:
    """Return the q-quantile (0 < q <= 1) interpolated from a histogram, None when empty."""
    total = sum(histogram)
    if not total:
        return None
    rank = q * total
    seen = 0
    for index, count in enumerate(histogram):
        if count and seen + count >= rank:
            fraction = (rank - seen) / count
            if index == 0:
                return HISTOGRAM_MIN_S * fraction
            if index == HISTOGRAM_BINS - 1:
                return HISTOGRAM_MAX_S
            return float(HISTOGRAM_MIN_S * HISTOGRAM_RATIO ** (index - 1 + fraction))
        seen += count
    return HISTOGRAM_MAX_S  # pragma: no cover - rank never exceeds the total


def _empty_histogram() -> array[int]:
    """Return a histogram with every bin at zero."""
    return array("Q", bytes(8 * HISTOGRAM_BINS))


@dataclass(slots=True)
class _Bucket:
    """Outcome counts and success latencies of one time bucket."""

    start: float
    counts: list[int]
    histogram: array[int] | None = None


@dataclass(slots=True)
class _EntitySpan:
    """Per-entity [commands, failed] of one span of the window."""

    start: float
    figures: dict[str, list[int]]


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredBucket:
    """A time bucket as read from storage: latency bins already in this version's layout."""

    start: float
    counts: list[int]
    histogram: dict[int, int]


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredSpan:
    """An entity span as read from storage: [commands, failed] per entity."""

    start: float
    figures: dict[str, tuple[int, int]]


@dataclass(frozen=True, slots=True)
class WindowFigures:
    """The window's figures: counts per outcome, success rate and latency quantiles."""

    counts: dict[str, int]
    commands: int
    failed: int
    success_rate: float | None
    latency_p50: float | None
    latency_p95: float | None


class WindowStatistics:
    """Outcome counts and latency histogram over the last `window_hours`."""

    def __init__(
        self,
        window_hours: float,
        *,
        min_samples: int = DEFAULT_MIN_SAMPLES,
        success_target: float = DEFAULT_SUCCESS_TARGET,
    ) -> None:
        """Start an empty window; entities are judged against `success_target`."""
        self.window_s = window_hours * 3600
        self.entity_span_s = self.window_s / ENTITY_SPANS
        self._buckets: deque[_Bucket] = deque()
        self._spans: deque[_EntitySpan] = deque()
        self._counts = [0] * len(OUTCOMES)
        self._histogram = _empty_histogram()
        self._entities: dict[str, list[int]] = {}
        self._ranking = EntityRanking(min_samples, success_target)

    def record(self, entity_id: str, outcome: str, latency_s: float | None, now: float) -> None:
        """Count one outcome; latencies of successes go into the histogram."""
        index = _OUTCOME_INDEX[outcome]
        bucket = self._bucket_at(now)
        bucket.counts[index] += 1
        self._counts[index] += 1
        if index == _SUCCESS and latency_s is not None:
            if bucket.histogram is None:
                bucket.histogram = _empty_histogram()
            latency_index = latency_bin(latency_s)
            bucket.histogram[latency_index] += 1
            self._histogram[latency_index] += 1
        if index == _SUCCESS or index in _FAILED:
            failed = int(index in _FAILED)
            span = self._span_at(now).figures.setdefault(entity_id, [0, 0])
            total = self._entities.setdefault(entity_id, [0, 0])
            span[0] += 1
            span[1] += failed
            total[0] += 1
            total[1] += failed
            if total[1]:
                self._ranking.update(entity_id, *total)

    def figures(self, now: float) -> WindowFigures:
        """Return the window's figures as of `now`."""
        self.expire(now)
        counts = dict(zip(OUTCOMES, self._counts, strict=True))
        failed = sum(self._counts[index] for index in _FAILED)
        commands = failed + self._counts[_SUCCESS]
        return WindowFigures(
            counts=counts,
            commands=commands,
            failed=failed,
            success_rate=100.0 * (commands - failed) / commands if commands else None,
            latency_p50=quantile(self._histogram, 0.5),
            latency_p95=quantile(self._histogram, 0.95),
        )

    def worst_offenders(self, now: float, limit: int) -> list[EntityFigures]:
        """Return up to `limit` entities with failures: lowest success rate, most failures first."""
        self.expire(now)
        return self._ranking.worst(limit)

    def below_target(self, now: float) -> list[EntityFigures]:
        """Return every entity below the success target with enough commands, worst first."""
        self.expire(now)
        return self._ranking.below_target()

    def expire(self, now: float) -> None:
        """Drop buckets and spans that lie wholly before the window."""
        cutoff = now - self.window_s
        while self._buckets and self._buckets[0].start + BUCKET_SECONDS <= cutoff:
            bucket = self._buckets.popleft()
            for index, count in enumerate(bucket.counts):
                self._counts[index] -= count
            if bucket.histogram is not None:
                for index, count in enumerate(bucket.histogram):
                    self._histogram[index] -= count
        while self._spans and self._spans[0].start + self.entity_span_s <= cutoff:
            for entity_id, (commands, failed) in self._spans.popleft().figures.items():
                total = self._entities[entity_id]
                total[0] -= commands
                total[1] -= failed
                if failed or total[1]:  # ranked before or after: its rate changed
                    self._ranking.update(entity_id, *total)
                if not total[0]:
                    del self._entities[entity_id]

    def rename_entity(self, old: str, new: str) -> None:
        """Carry a renamed entity's figures over to its new id: it is the same device."""
        if old not in self._entities:
            return
        for span in self._spans:
            if (moved := span.figures.pop(old, None)) is not None:
                kept = span.figures.setdefault(new, [0, 0])
                kept[0] += moved[0]
                kept[1] += moved[1]
        commands, failed = self._entities.pop(old)
        total = self._entities.setdefault(new, [0, 0])
        total[0] += commands
        total[1] += failed
        self._ranking.update(old, 0, 0)
        self._ranking.update(new, *total)

    def reset(self) -> None:
        """Forget everything."""
        self._buckets.clear()
        self._spans.clear()
        self._counts = [0] * len(OUTCOMES)
        self._histogram = _empty_histogram()
        self._entities.clear()
        self._ranking.clear()

    def _bucket_at(self, now: float) -> _Bucket:
        """Return the bucket for `now`, opening one when time has moved on."""
        start = now - now % BUCKET_SECONDS
        if not self._buckets or self._buckets[-1].start < start:
            self.expire(now)
            self._buckets.append(_Bucket(start, [0] * len(OUTCOMES)))
        return self._buckets[-1]

    def _span_at(self, now: float) -> _EntitySpan:
        """Return the entity span for `now`, opening one when time has moved on."""
        start = now - now % self.entity_span_s
        if not self._spans or self._spans[-1].start < start:
            self._spans.append(_EntitySpan(start, {}))
        return self._spans[-1]

    def as_dict(self) -> dict[str, Any]:
        """Return the window as JSON-ready data for storage (sparse histograms)."""
        return {
            "buckets": [
                {
                    "start": bucket.start,
                    "counts": dict(zip(OUTCOMES, bucket.counts, strict=True)),
                    "latency_bins": {
                        str(index): count
                        for index, count in enumerate(bucket.histogram or ())
                        if count
                    },
                }
                for bucket in self._buckets
            ],
            "entity_spans": [
                {"start": span.start, "entities": span.figures} for span in self._spans
            ],
        }

    def load(self, buckets: list[StoredBucket], spans: list[StoredSpan], now: float) -> None:
        """Replace the window with stored data (validated), dropping what lies before it."""
        self.reset()
        for stored in sorted(buckets, key=lambda bucket: bucket.start):
            bucket = _Bucket(stored.start, list(stored.counts))
            if stored.histogram:
                bucket.histogram = _empty_histogram()
                for index, count in stored.histogram.items():
                    bucket.histogram[index] += count
                    self._histogram[index] += count
            self._counts = [a + b for a, b in zip(self._counts, bucket.counts, strict=True)]
            self._buckets.append(bucket)
        for span in sorted(spans, key=lambda span: span.start):
            figures = {entity_id: list(pair) for entity_id, pair in span.figures.items()}
            for entity_id, (commands, failed) in figures.items():
                total = self._entities.setdefault(entity_id, [0, 0])
                total[0] += commands
                total[1] += failed
            self._spans.append(_EntitySpan(span.start, figures))
        for entity_id, (commands, failed) in self._entities.items():
            if failed:
                self._ranking.update(entity_id, commands, failed)
        self.expire(now)
