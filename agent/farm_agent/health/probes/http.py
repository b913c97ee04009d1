"""HTTP probe: status, latency and, when caching is expected, whether the cache really works.

With `expect_cache: true` the endpoint must send `Cache-Control` and an `ETag`, and a
request with `If-None-Match: <etag>` must come back `304 Not Modified`; the speed-up
is the full answer's time over the 304's. When the server tells its cache status
(`CF-Cache-Status`, `X-Cache`, or `Age`) the hit ratio covers the last 20 probes.
At most MAX_BODY_BYTES of an answer are read, so a huge body costs no memory. Errors
are scrubbed of the URL's token (`farm_agent.masking`) before they go anywhere.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

import aiohttp

from farm_agent.config import HttpProbeConfig
from farm_agent.failures import describe_failure
from farm_agent.health.probes.result import CacheFigures, ProbeKind, ProbeResult
from farm_agent.masking import scrub

_LOGGER = logging.getLogger(__name__)

KIND = ProbeKind.HTTP
HIT_HISTORY = 20
# Status, headers and timing need no body: reading stops here.
MAX_BODY_BYTES = 1 << 20
READ_CHUNK_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class _Answer:
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


class HttpProbe:
    """One configured endpoint; remembers the last 20 cache statuses for the hit ratio."""

    def __init__(self, config: HttpProbeConfig) -> None:
        self.config = config
        self._hits: deque[bool] = deque(maxlen=HIT_HISTORY)

    @property
    def hit_ratio(self) -> float | None:
        return sum(self._hits) / len(self._hits) if self._hits else None

    async def run(self, session: aiohttp.ClientSession) -> ProbeResult:
        """Probe once; the caller bounds the time (`timeout_s` of this probe)."""
        config = self.config
        try:
            answer = await _get(session, config.url, {})
        except Exception as err:  # whatever it is, its text may quote the URL: scrubbed below
            return ProbeResult(config.name, KIND, False, None, self._describe_error(err))
        if answer.cache_hit is not None:
            self._hits.append(answer.cache_hit)
        problems: list[str] = []
        if answer.status != config.expect_status:
            problems.append(f"status {answer.status}, expected {config.expect_status}")
        revalidated: bool | None = None
        speedup: float | None = None
        if config.expect_cache and not problems:
            revalidated, speedup = await self._check_cache(session, answer, problems)
        cache = CacheFigures(
            etag=answer.etag is not None,
            cache_control=answer.cache_control,
            revalidated_304=revalidated,
            speedup=None if speedup is None else round(speedup, 1),
            hit_ratio=None if self.hit_ratio is None else round(self.hit_ratio, 3),
        )
        detail = "; ".join(problems) if problems else _describe(answer, cache)
        return ProbeResult(config.name, KIND, not problems, answer.latency_ms, detail, cache)

    async def _check_cache(
        self, session: aiohttp.ClientSession, full: _Answer, problems: list[str]
    ) -> tuple[bool | None, float | None]:
        if full.cache_control is None:
            problems.append("no Cache-Control")
        if full.etag is None:
            problems.append("no ETag")
            return None, None
        try:
            conditional = await _get(session, self.config.url, {"If-None-Match": full.etag})
        except Exception as err:
            problems.append(f"If-None-Match request failed: {self._describe_error(err)}")
            return False, None
        if conditional.status != 304:
            problems.append(f"If-None-Match answered {conditional.status}, not 304")
            return False, None
        return True, full.latency_ms / max(conditional.latency_ms, 0.001)

    def _describe_error(self, error: BaseException) -> str:
        text = scrub(describe_failure(error), self.config.url)
        if not isinstance(error, aiohttp.ClientError | OSError):
            _LOGGER.warning("HTTP probe %s failed unexpectedly: %s", self.config.name, text)
        return text


async def _get(session: aiohttp.ClientSession, url: str, headers: dict[str, str]) -> _Answer:
    started = time.perf_counter()
    async with session.get(url, headers=headers, allow_redirects=True) as response:
        read = 0
        while read < MAX_BODY_BYTES:
            chunk = await response.content.read(min(READ_CHUNK_BYTES, MAX_BODY_BYTES - read))
            if not chunk:
                break
            read += len(chunk)
        latency_ms = (time.perf_counter() - started) * 1000
        if read >= MAX_BODY_BYTES:
            response.close()  # drop the connection rather than drain the rest of the body
        return _Answer(
            status=response.status,
            latency_ms=latency_ms,
            etag=response.headers.get("ETag"),
            cache_control=response.headers.get("Cache-Control"),
            cache_hit=cache_hit(response.headers),
        )


def _describe(answer: _Answer, cache: CacheFigures) -> str:
    parts = [str(answer.status)]
    if cache.etag:
        parts.append("ETag")
    if cache.cache_control:
        parts.append(cache.cache_control)
    if cache.revalidated_304:
        parts.append(f"304 {cache.speedup:g}x faster")
    if cache.hit_ratio is not None:
        parts.append(f"hit ratio {cache.hit_ratio:.0%}")
    return ", ".join(parts)
