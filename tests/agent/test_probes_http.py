"""The HTTP probe against a real server: status, ETag, 304 revalidation, speed-up, hit ratio."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from farm_agent.config import HttpProbeConfig
from farm_agent.config_file import parse_config
from farm_agent.health.probes import ProbeResult
from farm_agent.health.probes.http import HttpProbe
from farm_agent.masking import scrub, where
from tests.agent.support import HUGE_BODY_BYTES, Endpoint, judge, result_named, running_prober
from tests.support.agent import TEST_SECRET, farm_agent, write_config


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


async def test_a_working_cache_revalidates_with_304_and_reports_the_speed_up_against_40x(
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
    assert result.detail.endswith("x faster (target 40x), hit ratio 100%")
    assert result.cache.cached_ms is not None  # the 304's time: the cached answer's


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


# A token in the URL never shows, however the HTTP library spells it back -----------

# The suite's secret, percent-encoded as a user may paste it: aiohttp decodes `%2D`.
SPELLED_SECRET = TEST_SECRET.replace("-", "%2D", 1)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:{port}/loop?token=" + SPELLED_SECRET,
        "http://127.0.0.1:{port}/loop?a=1&token=" + SPELLED_SECRET.lower() + "&b=2",
        "http://probe:" + SPELLED_SECRET + "@127.0.0.1:{port}/loop",
        "http://127.0.0.1:{port}/loop?x=1#" + SPELLED_SECRET,
    ],
    ids=["query", "query_lower_case", "userinfo", "fragment"],
)
async def test_a_token_in_the_probe_url_shows_nowhere_in_any_spelling(
    make_config: Callable[..., dict[str, Any]], endpoint: Endpoint, tmp_path: Path, url: str
) -> None:
    port = endpoint.base.rsplit(":", 1)[1]
    http = [{"name": "api_health", "url": url.format(port=port), "expect_cache": False}]
    config = make_config(probes={"http": http})
    path = write_config(tmp_path / "check.yaml", config)

    result = await probe_once(probe_of(url.format(port=port), expect_cache=False))
    checked = await farm_agent("check", "--config", str(path), "--json")

    assert not result.ok
    assert result.detail.startswith("TooManyRedirects")
    assert f"http://127.0.0.1:{port}/loop" in result.detail, "where it points is still named"
    for shown in (result.detail, checked.stdout, checked.stderr):
        assert TEST_SECRET.lower() not in shown.lower()
        assert SPELLED_SECRET.lower() not in shown.lower()
    [problem] = [p for p in json.loads(checked.stdout)["problems"] if p.startswith("api_health")]
    assert "TooManyRedirects" in problem


def test_scrub_cuts_every_url_to_where_it_points_and_masks_the_secret_parts() -> None:
    url = "https://user:pa%73s@api.example.com:8443/v1/health?key=abcd%2D1234#frag-secret"
    text = (
        "failed for URL('HTTPS://user:pass@API.example.com:8443/v1/health?key=ABCD-1234'), "
        "redirected to http://other.example/login?next=%2Fhealth%3Fkey%3Dabcd-1234; abcd-1234"
    )

    scrubbed = scrub(text, url)

    assert "https://api.example.com:8443/v1/health" in scrubbed
    assert "http://other.example/login" in scrubbed
    for secret in ("abcd", "1234", "pass", "frag-secret", "next="):
        assert secret not in scrubbed.lower()
    assert where(url) == "https://api.example.com:8443/v1/health"


# A huge answer costs no memory --------------------------------------------------------


class PeakRss:
    """Samples this process's resident memory on a thread, keeping the peak."""

    def __init__(self) -> None:
        self.peak = self.now()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    @staticmethod
    def now() -> int:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE")

    def _sample(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, self.now())

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


async def test_a_huge_body_is_not_read_whole_and_the_probe_still_reports(
    endpoint: Endpoint,
) -> None:
    probe = probe_of(endpoint.url("/huge"), expect_cache=False)
    before = PeakRss.now()

    with PeakRss() as rss:
        result = await probe_once(probe)

    assert result.ok, result.detail
    assert result.detail == "200"
    assert result.latency_ms is not None
    grown_mb = (rss.peak - before) / 2**20
    assert grown_mb < HUGE_BODY_BYTES / 2**20 / 4, f"RSS grew {grown_mb:.0f} MB"
