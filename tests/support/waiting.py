"""Waiting for a condition with a deadline, never for a fixed time."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def wait_until(
    check: Callable[[], T | Awaitable[T]], what: str, timeout: float = 30, every: float = 0.1
) -> T:
    """Poll `check` (plain or async) until it returns something truthy; fail naming `what`."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if inspect.isawaitable(found):
            found = await found
        if found:
            return found  # type: ignore[return-value]
        assert time.monotonic() < deadline, f"not within {timeout} s: {what} (last: {found!r})"
        await asyncio.sleep(every)
