"""The cache-invalidation check: after a write, the cached answer must give way to the new one.

The HTTP probe has fetched the endpoint and seen its ETag revalidated (`304`). Then
the configured write (`invalidate: {method, url, body}`) changes the resource, and
conditional requests with the old ETag follow, a little further apart each time,
until one answers `200` with another ETag (fresh: the time since the write answered
is `fresh_after_write_ms`) or the probe's time runs out (stale: "stale after write:
304 with the old ETag 3.0 s after the update"). `{nonce}` anywhere in the body
becomes a fresh value for each write, so every write really changes the resource.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from typing import Any

import aiohttp

from farm_agent.config import InvalidateConfig
from farm_agent.failures import describe_failure
from farm_agent.health.probes.http_request import Answer, request
from farm_agent.masking import scrub

NONCE = "{nonce}"
# Pauses between the conditional requests after the write, in seconds; the last repeats.
POLL_PAUSES_S = (0.02, 0.05, 0.1, 0.2, 0.25)


@dataclass(frozen=True, slots=True)
class Invalidation:
    """What the write did to the cache: stale (None: not known), how soon fresh, or the problem."""

    stale_after_write: bool | None
    fresh_after_write_ms: float | None
    problem: str | None


async def check_invalidation(
    session: aiohttp.ClientSession,
    url: str,
    etag: str,
    write: InvalidateConfig,
    deadline: float,
) -> Invalidation:
    """Write, then poll `url` with `If-None-Match: etag` until fresh or `deadline` (monotonic)."""
    try:
        written = await request(session, write.method, write.url, **_body(write.body))
    except Exception as err:  # its text may quote the URL: scrubbed
        reason = scrub(describe_failure(err), write.url)
        return Invalidation(None, None, f"invalidate {write.method} failed: {reason}")
    if not 200 <= written.status < 300:
        return Invalidation(
            None, None, f"invalidate {write.method} answered {written.status}, not 2xx"
        )
    written_at = time.monotonic()
    pauses = iter(POLL_PAUSES_S)
    pause = next(pauses)
    while True:
        try:
            answer = await request(session, "GET", url, {"If-None-Match": etag})
        except Exception as err:
            reason = scrub(describe_failure(err), url)
            return Invalidation(None, None, f"request after the write failed: {reason}")
        if answer.status == 200 and answer.etag != etag:
            return Invalidation(False, (time.monotonic() - written_at) * 1000, None)
        if time.monotonic() + pause >= deadline:
            return _stale(answer, etag, time.monotonic() - written_at)
        await asyncio.sleep(pause)
        pause = next(pauses, pause)


def _stale(answer: Answer, etag: str, waited_s: float) -> Invalidation:
    after = f"{waited_s:.1f} s after the update"
    if answer.status == 304:
        return Invalidation(True, None, f"stale after write: 304 with the old ETag {after}")
    if answer.etag == etag:
        return Invalidation(
            True, None, f"stale after write: {answer.status} with the old ETag {after}"
        )
    return Invalidation(None, None, f"no fresh answer after the write: {answer.status} {after}")


def _body(body: Any) -> dict[str, Any]:
    """aiohttp's arguments for the write's body: text as it is, anything else as JSON."""
    if body is None:
        return {}
    nonce = uuid.uuid4().hex
    filled = _with_nonce(body, nonce)
    if isinstance(filled, str):
        return {"data": filled.encode(), "headers": {"Content-Type": "text/plain"}}
    return {"json": filled}


def _with_nonce(value: Any, nonce: str) -> Any:
    if isinstance(value, str):
        return value.replace(NONCE, nonce)
    if isinstance(value, dict):
        return {key: _with_nonce(item, nonce) for key, item in value.items()}
    if isinstance(value, list):
        return [_with_nonce(item, nonce) for item in value]
    return value
