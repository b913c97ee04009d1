"""Timestamps as the contracts write them: ISO 8601 UTC with milliseconds and a Z."""

from __future__ import annotations

import functools
import time


def format_timestamp(epoch_s: float) -> str:
    """ISO 8601 UTC with milliseconds and a Z, as the envelope contract shows."""
    whole, fraction = divmod(epoch_s, 1.0)
    # Rounded to the microsecond first, as datetime does: 0.123 is 0.12299999... in binary.
    microseconds = round(fraction * 1_000_000)
    if microseconds == 1_000_000:
        whole, microseconds = whole + 1, 0
    return f"{_second_text(int(whole))}.{microseconds // 1000:03d}Z"


@functools.lru_cache(maxsize=16)
def _second_text(epoch_s: int) -> str:
    # Readings arrive thousands a second: most share their second with the one before.
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch_s))
