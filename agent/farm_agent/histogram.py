"""The latency histogram of the task figures: log-spaced buckets with a stated error bound.

Bucket 0 holds [0, 1 ms]; bucket i >= 1 holds (1 ms * 1.1^(i-1), 1 ms * 1.1^i]. A quantile
is read as the geometric middle of the bucket holding the nearest-rank sample, so it is
within sqrt(1.1) - 1 = 4.9 % of that sample (0.5 ms absolute below 1 ms). The top bucket
also holds everything above a week. The same formula runs in SQL, where tasks are counted.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

MIN_S = 0.001
RATIO = 1.1
# Enough buckets for a week: 1 ms * 1.1^213 is 6.6e8 ms.
TOP_BUCKET = 213
RELATIVE_ERROR = math.sqrt(RATIO) - 1
ABSOLUTE_ERROR_S = MIN_S / 2


def bucket_of(seconds: float) -> int:
    """The bucket a latency falls in."""
    if seconds <= MIN_S:
        return 0
    return min(TOP_BUCKET, math.ceil(math.log(seconds / MIN_S) / math.log(RATIO)))


def bucket_sql(seconds_expression: str) -> str:
    """`bucket_of` as a SQL expression of a number of seconds (the histogram is kept in SQL)."""
    # In float8 throughout, as Python computes it: the same libm log, the same rounding.
    seconds = f"({seconds_expression})::float8"
    return (
        f"CASE WHEN {seconds} <= {MIN_S}::float8 THEN 0 ELSE least({TOP_BUCKET}, "
        f"ceil(ln({seconds} / {MIN_S}::float8) / ln({RATIO}::float8)))::int END"
    )


def bucket_value(bucket: int) -> float:
    """The value a bucket stands for: the geometric middle of its bounds."""
    if bucket <= 0:
        return MIN_S / 2
    return float(MIN_S * RATIO ** (bucket - 0.5))


def highest_bucket_within(seconds: float) -> int:
    """The highest bucket whose value is at most `seconds`; -1 when not even bucket 0's is.

    A latency counts as within a limit when its bucket's value is: then a quantile read
    here and the share within the limit agree (p95 <= limit exactly when at least 95 %
    are within it), and either is off by at most the stated error.
    """
    if seconds < bucket_value(0):
        return -1
    bucket = max(0, min(TOP_BUCKET, math.floor(math.log(seconds / MIN_S) / math.log(RATIO) + 0.5)))
    # The logarithm can land a hair on the wrong side of a bucket's value: settle it exactly.
    while bucket < TOP_BUCKET and bucket_value(bucket + 1) <= seconds:
        bucket += 1
    while bucket > 0 and bucket_value(bucket) > seconds:
        bucket -= 1
    return bucket


def merge(histograms: Iterable[Mapping[str, int]]) -> dict[int, int]:
    """Sum histograms as the database keeps them ({"bucket": count} objects)."""
    total: dict[int, int] = {}
    for histogram in histograms:
        for bucket, count in histogram.items():
            total[int(bucket)] = total.get(int(bucket), 0) + int(count)
    return total


def quantile(histogram: Mapping[int, int], q: float) -> float | None:
    """The nearest-rank q-quantile (0 < q <= 1) read from a histogram; None when it is empty."""
    count = sum(histogram.values())
    if count == 0:
        return None
    rank = max(1, math.ceil(q * count))
    seen = 0
    for bucket in sorted(histogram):
        seen += histogram[bucket]
        if seen >= rank:
            return bucket_value(bucket)
    return bucket_value(max(histogram))
