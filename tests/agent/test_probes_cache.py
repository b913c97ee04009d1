"""The HTTP probe's cache checks on real HTTP servers: invalidation after a write, targets."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from farm_agent.config import AgentConfig
from farm_agent.config_file import parse_config
from farm_agent.health.cache_targets import cache_problems
from farm_agent.health.probes.http import HttpProbe
from farm_agent.health.probes.result import ProbeResult, ProbeRound
from tests.agent.support import Endpoint
from tests.support.agent import TEST_SECRET, farm_agent, write_config

STALE = re.compile(r"^stale after write: 304 with the old ETag \d+\.\d s after the update$")


class Resource:
    """A resource behind a cache: writes change it; the cache lets go `invalidate_after_s` later.

    `None`: the cache never lets go (it serves the old answer, and 304 to the old ETag).
    """

    def __init__(self, invalidate_after_s: float | None = 0.0, revalidate_s: float = 0.0) -> None:
        self.version = 1
        self.cached_version = 1
        self.invalidate_after_s = invalidate_after_s
        self.revalidate_s = revalidate_s
        self.writes: list[Any] = []
        self._pending: asyncio.Task[None] | None = None

    @property
    def etag(self) -> str:
        return f'"v{self.cached_version}"'

    async def read(self, request: web.Request) -> web.Response:
        if request.headers.get("If-None-Match") == self.etag:
            await asyncio.sleep(self.revalidate_s)
            return web.Response(status=304, headers={"ETag": self.etag})
        await asyncio.sleep(0.02)  # the full answer costs the origin a little
        body = {"version": self.cached_version}
        return web.json_response(body, headers={"ETag": self.etag, "Cache-Control": "max-age=60"})

    async def write(self, request: web.Request) -> web.Response:
        self.writes.append(await request.json())
        self.version += 1
        if self.invalidate_after_s is not None:
            self._pending = asyncio.create_task(self._invalidate(self.invalidate_after_s))
        return web.Response(status=204)

    async def _invalidate(self, after_s: float) -> None:
        await asyncio.sleep(after_s)
        self.cached_version = self.version


class Server:
    """The test's HTTP server: one resource per path."""

    def __init__(self, base: str, resources: dict[str, Resource]) -> None:
        self.base = base
        self.resources = resources

    def url(self, path: str) -> str:
        return f"{self.base}{path}"


async def _refuse_write(request: web.Request) -> web.Response:
    return web.Response(status=500, text="no")


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    resources = {
        "/fresh": Resource(),
        "/stale": Resource(invalidate_after_s=None),
        "/lagging": Resource(invalidate_after_s=0.3),
        "/slow-304": Resource(revalidate_s=0.15),
    }
    app = web.Application()
    for path, resource in resources.items():
        app.router.add_get(path, resource.read)
        app.router.add_put(path, resource.write)
    app.router.add_put("/refuses", _refuse_write)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield Server(f"http://127.0.0.1:{runner.addresses[0][1]}", resources)
    finally:
        await runner.cleanup()


def config_with(probe: dict[str, Any], **thresholds: Any) -> AgentConfig:
    return parse_config(
        {
            "agent_id": "farm-east",
            "backend": {"direct_dsn": "postgresql://u@127.0.0.1:1/farm"},
            "probes": {"http": [{"name": "api", **probe}], "thresholds": thresholds},
        }
    )


async def probe(config: AgentConfig, times: int = 1) -> tuple[ProbeResult, list[str]]:
    """Probe the one endpoint `times` times; the last result and the problems judged of it."""
    endpoint = HttpProbe(config.probes.http[0])
    async with aiohttp.ClientSession() as session:
        for _ in range(times):
            result = await asyncio.wait_for(endpoint.run(session), config.probes.http[0].timeout_s)
    found = ProbeRound((), None, None, (result,), broker_connected=True)
    return result, cache_problems(config, found)


def invalidating(server: Server, path: str, **probe: Any) -> AgentConfig:
    write = {"method": "put", "url": server.url(path), "body": {"note": "written {nonce}"}}
    return config_with(
        {"url": server.url(path), "expect_cache": True, "invalidate": write, **probe}
    )


async def test_a_write_that_invalidates_the_cache_is_fresh_at_once(server: Server) -> None:
    result, problems = await probe(invalidating(server, "/fresh"))

    assert result.ok, result.detail
    assert result.cache is not None
    cache = result.as_json()["cache"]
    assert cache["revalidated_304"] is True
    assert cache["stale_after_write"] is False
    assert cache["fresh_after_write_ms"] is not None
    assert re.search(r"fresh \d+ ms after a write", result.detail)
    assert problems == []


async def test_each_write_carries_a_fresh_nonce_so_it_really_changes_the_resource(
    server: Server,
) -> None:
    config = invalidating(server, "/fresh")

    await probe(config, times=2)

    notes = [write["note"] for write in server.resources["/fresh"].writes]
    assert len(notes) == 2
    assert all(note.startswith("written ") and "{nonce}" not in note for note in notes)
    assert notes[0] != notes[1]


async def test_a_cache_that_keeps_serving_the_old_etag_after_a_write_is_named_stale(
    server: Server,
) -> None:
    config = invalidating(server, "/stale", timeout_s=1)

    result, _ = await probe(config)

    assert not result.ok
    assert STALE.match(result.detail), result.detail
    cache = result.as_json()["cache"]
    assert cache["stale_after_write"] is True
    assert cache["fresh_after_write_ms"] is None


async def test_a_stale_cache_is_a_problem_in_the_health_and_check_exits_1(
    server: Server, make_config: Callable[..., dict[str, Any]], tmp_path: Path
) -> None:
    write = {"method": "PUT", "url": server.url("/stale"), "body": {"v": "{nonce}"}}
    http = [
        {"name": "api", "url": server.url("/stale"), "expect_cache": True, "timeout_s": 1}
        | {"invalidate": write}
    ]
    path = write_config(tmp_path / "check.yaml", make_config(probes={"http": http}))

    result = await farm_agent("check", "--config", str(path), "--json")

    health = json.loads(result.stdout)
    assert result.returncode == 1
    assert any(STALE.match(problem.removeprefix("api: ")) for problem in health["problems"])
    api = next(probe for probe in health["probes"] if probe["name"] == "api")
    assert api["cache"]["stale_after_write"] is True


async def test_a_cache_that_lets_go_late_reports_how_long_after_the_write(
    server: Server,
) -> None:
    result, _ = await probe(invalidating(server, "/lagging"))

    assert result.ok, result.detail
    assert result.cache is not None
    # The server keeps the old answer for 300 ms after the write, by construction.
    assert result.cache.fresh_after_write_ms is not None
    assert result.cache.fresh_after_write_ms >= 300
    assert result.cache.stale_after_write is False


async def test_a_refused_write_is_named_and_its_url_token_never_shown(server: Server) -> None:
    write = {"method": "PUT", "url": server.url(f"/refuses?token={TEST_SECRET}"), "body": "x"}
    config = config_with({"url": server.url("/fresh"), "expect_cache": True, "invalidate": write})

    result, _ = await probe(config)

    assert not result.ok
    assert result.detail == "invalidate PUT answered 500, not 2xx"


async def test_a_write_to_a_closed_port_fails_without_showing_its_token(server: Server) -> None:
    write = {"method": "POST", "url": f"http://127.0.0.1:1/write?token={TEST_SECRET}"}
    config = config_with({"url": server.url("/fresh"), "invalidate": write})

    result, _ = await probe(config)

    assert not result.ok
    assert result.detail.startswith("invalidate POST failed: ")
    assert TEST_SECRET not in result.detail
    assert "Cannot connect to host 127.0.0.1:1" in result.detail


async def test_a_cached_answer_slower_than_cached_ms_is_the_cached_endpoint_alert(
    server: Server,
) -> None:
    config = config_with({"url": server.url("/slow-304"), "expect_cache": True})

    result, problems = await probe(config)

    assert result.ok
    assert result.cache is not None
    assert result.cache.cached_ms is not None
    assert result.cache.cached_ms >= 150
    assert problems == [f"api: cached answer {result.cache.cached_ms:.0f} ms > 100 ms"]


async def test_a_full_answer_slower_than_the_probes_latency_ms_is_a_problem(
    server: Server,
) -> None:
    config = config_with({"url": server.url("/fresh"), "latency_ms": 1})

    result, problems = await probe(config)

    assert result.ok
    assert result.latency_ms is not None
    assert problems == [f"api: {result.latency_ms:.0f} ms > 1 ms"]


async def test_the_hit_ratio_is_judged_against_90_percent_once_ten_probes_told(
    endpoint: Endpoint,
) -> None:
    config = config_with({"url": endpoint.url("/cdn")})
    endpoint.cdn.statuses = ["MISS", "MISS"]

    _, after_one = await probe(config, times=1)
    endpoint.cdn.statuses = ["MISS", "MISS"]
    _, after_ten = await probe(config, times=10)

    assert after_one == []  # one miss after an expiry is no evidence
    assert after_ten == ["api: cache hit ratio 80% < 90% (last 10 probes)"]


def test_invalidate_takes_only_writes_and_names_the_key() -> None:
    with pytest.raises(ValueError, match=r"probes.http.0.invalidate.method: must be POST, PUT"):
        config_with({"url": "http://x/", "invalidate": {"method": "GET", "url": "http://x/"}})


async def test_a_stale_cache_is_named_within_the_probes_own_timeout(server: Server) -> None:
    # `probe` bounds each run by the probe's timeout, as the agent does: it must answer by then.
    result, _ = await probe(invalidating(server, "/stale", timeout_s=0.5))

    assert STALE.match(result.detail), result.detail
