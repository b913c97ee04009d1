"""The spec's targets for HTTP endpoints and their caches, judged: one sentence per miss.

- `latency_ms` of a probe: the full answer slower than that.
- `thresholds.cached_ms` (100): a cached answer (the 304, or one a cache says it
  served) slower than that: the spec's "query time > 100 ms for cached endpoints".
- `thresholds.cache_hit_ratio` (0.9): judged once at least MIN_HIT_SAMPLES probes
  told the cache status, so one miss after a cache expiry is not "0 % hits".
The speed-up of a cached answer over the full one is shown against the 40x target,
not judged: it depends on the endpoint.
"""

from __future__ import annotations

from farm_agent.config import AgentConfig
from farm_agent.health.probes.result import ProbeKind, ProbeRound

MIN_HIT_SAMPLES = 10


def cache_problems(config: AgentConfig, found: ProbeRound) -> list[str]:
    """The HTTP probes that answered but miss a latency or cache target."""
    thresholds = config.probes.thresholds
    limits = {probe.name: probe.latency_ms for probe in config.probes.http}
    problems = []
    for result in found.results:
        if result.kind != ProbeKind.HTTP or not result.ok:
            continue
        limit = limits.get(result.name)
        if limit is not None and result.latency_ms is not None and result.latency_ms > limit:
            problems.append(f"{result.name}: {result.latency_ms:.0f} ms > {limit:g} ms")
        cache = result.cache
        if cache is None:
            continue
        if cache.cached_ms is not None and cache.cached_ms > thresholds.cached_ms:
            problems.append(
                f"{result.name}: cached answer {cache.cached_ms:.0f} ms"
                f" > {thresholds.cached_ms:g} ms"
            )
        ratio = cache.hit_ratio
        if (
            ratio is not None
            and cache.hit_samples >= MIN_HIT_SAMPLES
            and ratio < thresholds.cache_hit_ratio
        ):
            problems.append(
                f"{result.name}: cache hit ratio {ratio:.0%} < {thresholds.cache_hit_ratio:.0%}"
                f" (last {cache.hit_samples} probes)"
            )
    return problems
