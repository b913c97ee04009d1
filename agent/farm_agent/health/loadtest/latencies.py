"""Latencies of a load test in bounded memory: log-spaced buckets 2 % wide.

A minute of 100 clients can make millions of queries; the counts per bucket stay a
few hundred numbers whatever the count. A percentile is the geometric middle of the
bucket holding the nearest-rank sample: within 1 % of it (0.005 ms below 0.01 ms).
"""

from __future__ import annotations

import math
from collections import Counter

FLOOR_MS = 0.01
RATIO = 1.02
_LOG_RATIO = math.log(RATIO)


class Latencies:
    """Counts of latencies by bucket; percentiles read from them."""

    def __init__(self) -> None:
        self._buckets: Counter[int] = Counter()
        self.count = 0

    def add(self, milliseconds: float) -> None:
        self._buckets[_bucket_of(milliseconds)] += 1
        self.count += 1

    def percentile(self, share: float) -> float | None:
        """The latency below which `share` (0-1) of them fall; None without any."""
        if not self.count:
            return None
        rank = max(1, math.ceil(share * self.count))
        seen = 0
        for bucket in sorted(self._buckets):
            seen += self._buckets[bucket]
            if seen >= rank:
                return _value_of(bucket)
        raise AssertionError("the ranks add up to the count")

    def summary(self) -> dict[str, float | None]:
        """p50, p95 and p99 in milliseconds, rounded for reading."""
        found = {f"p{round(share * 100)}": self.percentile(share) for share in (0.5, 0.95, 0.99)}
        return {key: None if value is None else round(value, 2) for key, value in found.items()}


def _bucket_of(milliseconds: float) -> int:
    if milliseconds <= FLOOR_MS:
        return 0
    return math.ceil(math.log(milliseconds / FLOOR_MS) / _LOG_RATIO)


def _value_of(bucket: int) -> float:
    if bucket == 0:
        return FLOOR_MS / 2
    return float(FLOOR_MS * RATIO ** (bucket - 0.5))
