"""The HTTP probe against a real server: status, ETag, 304 revalidation, speed-up, hit ratio."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import aiohttp

from farm_agent.config import HttpProbeConfig, parse_config
from farm_agent.probes import ProbeResult
from farm_agent.probes.http import HttpProbe
from tests.agent.health_support import Endpoint, judge, result_named, running_prober

pytest_plugins = ["tests.agent.health_fixtures"]


def probe_of(url: str, *, expect_cache: bool = True, expect_status: int = 200) -> HttpProbe:
    return HttpProbe(HttpProbeConfig("api", url, expect_status, expect_cache, timeout_s=5))


async def probe_once(probe: HttpProbe, times: int = 1) -> ProbeResult:
    async with aiohttp.ClientSession() as session:
        for _ in range(times - 1):
            await probe.run(session)
        return await probe.run(session)


async def test_http_500_is_a_problem_named_with_the_status_expected(
    make_config: Callable[..., dict[str, Any]], endpoint: Endpoint
) -> None:
    http = [{"name": "api_health", "url": endpoint.url("/error")}]
    config = parse_config(make_config(probes={"http": http}))
    async with running_prober(config) as prober:
        found = await prober.run_round()

    result = result_named(found, "api_health")

    assert not result.ok
    assert result.latency_ms is not None
    assert "api_health: status 500, expected 200" in judge(config, found).problems


async def test_missing_etag_is_named_when_caching_is_expected(endpoint: Endpoint) -> None:
    result = await probe_once(probe_of(endpoint.url("/no-etag")))

    assert not result.ok
    assert result.detail == "no ETag"
    assert result.cache is not None
    assert result.cache.etag is False
    assert result.cache.cache_control == "max-age=60"
    assert result.cache.revalidated_304 is None


async def test_a_server_ignoring_if_none_match_is_named(endpoint: Endpoint) -> None:
    result = await probe_once(probe_of(endpoint.url("/ignores-if-none-match")))

    assert not result.ok
    assert result.detail == "If-None-Match answered 200, not 304"
    assert result.cache is not None
    assert result.cache.etag is True
    assert result.cache.revalidated_304 is False
    assert result.cache.speedup is None


async def test_a_working_cache_revalidates_with_304_and_reports_the_speed_up(
    endpoint: Endpoint,
) -> None:
    result = await probe_once(probe_of(endpoint.url("/cached")))

    assert result.ok, result.detail
    assert result.cache is not None
    assert result.cache.revalidated_304 is True
    # The full answer takes 50 ms on purpose, the 304 is immediate.
    assert result.cache.speedup is not None
    assert result.cache.speedup > 5
    assert result.cache.hit_ratio == 1.0  # X-Cache: HIT
    assert result.detail.startswith("200, ETag, max-age=60, 304 ")
    assert result.detail.endswith("x faster, hit ratio 100%")


async def test_no_cache_headers_leave_every_cache_figure_unknown(endpoint: Endpoint) -> None:
    result = await probe_once(probe_of(endpoint.url("/plain"), expect_cache=False))

    assert result.ok
    assert result.detail == "200"
    assert result.cache is not None
    assert result.cache.etag is False
    assert result.cache.cache_control is None
    assert result.cache.revalidated_304 is None
    assert result.cache.speedup is None
    assert result.cache.hit_ratio is None


async def test_hit_ratio_covers_the_last_twenty_probes(endpoint: Endpoint) -> None:
    probe = probe_of(endpoint.url("/cdn"), expect_cache=False)
    endpoint.cdn.statuses = ["MISS"] * 5 + ["HIT"] * 5

    half = await probe_once(probe, times=10)
    endpoint.cdn.statuses = ["HIT"] * 20
    all_hits = await probe_once(probe, times=20)

    assert half.cache is not None
    assert half.cache.hit_ratio == 0.5
    assert all_hits.cache is not None
    assert all_hits.cache.hit_ratio == 1.0, "the five misses fell out of the last 20"


async def test_unreachable_endpoint_is_named_without_showing_the_url_token() -> None:
    result = await probe_once(probe_of("http://127.0.0.1:1/health?token=very-secret"))

    assert not result.ok
    assert result.latency_ms is None
    assert result.detail.startswith("ClientConnectorError")
    assert "very-secret" not in result.detail


async def test_a_status_that_is_expected_passes_even_if_it_is_an_error(
    endpoint: Endpoint,
) -> None:
    probe = probe_of(endpoint.url("/error"), expect_cache=False, expect_status=500)

    result = await probe_once(probe)

    assert result.ok
    assert result.detail == "500"
