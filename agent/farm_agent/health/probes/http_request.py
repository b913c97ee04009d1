"""One bounded HTTP request: status, the headers the probes read, and how long it took.

At most MAX_BODY_BYTES of an answer are read, then the connection is dropped, so a
huge body costs no memory; the time is to that point.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

# Status, headers and timing need no body: reading stops here.
MAX_BODY_BYTES = 1 << 20
READ_CHUNK_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class Answer:
    """What the probes need of one HTTP answer."""

    status: int
    latency_ms: float
    etag: str | None
    cache_control: str | None
    cache_hit: bool | None


def cache_hit(headers: Mapping[str, str]) -> bool | None:
    """Whether a cache answered, if the server says: CDN status first, then `Age`."""
    for header in ("CF-Cache-Status", "X-Cache"):
        value = headers.get(header)
        if value:
            return "HIT" in value.upper()
    if "Age" in headers:
        return True
    return None


async def request(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    headers: dict[str, str] | None = None,
    **body: Any,
) -> Answer:
    """`method url` once, redirects followed; `body` is aiohttp's `json=` or `data=`."""
    started = time.perf_counter()
    async with session.request(
        method, url, headers=headers or {}, allow_redirects=True, **body
    ) as response:
        read = 0
        while read < MAX_BODY_BYTES:
            chunk = await response.content.read(min(READ_CHUNK_BYTES, MAX_BODY_BYTES - read))
            if not chunk:
                break
            read += len(chunk)
        latency_ms = (time.perf_counter() - started) * 1000
        if read >= MAX_BODY_BYTES:
            response.close()  # drop the connection rather than drain the rest of the body
        return Answer(
            status=response.status,
            latency_ms=latency_ms,
            etag=response.headers.get("ETag"),
            cache_control=response.headers.get("Cache-Control"),
            cache_hit=cache_hit(response.headers),
        )
