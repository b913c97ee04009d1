"""Fixtures of the agent's tests; the shared ones (config, processes) are in tests/conftest.py.

Each test gets its own agent id, queue, topics and spool; every service is serving
when it starts; nothing the agent shows during the session may hold the test secret.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import asyncpg
import pytest
from aiohttp import web

from tests.agent.support import (
    ETAG,
    HUGE_BODY_BYTES,
    CacheStatus,
    Endpoint,
    create_runs_table,
    forget_task_figures,
)
from tests.support.mqtt import Watcher
from tools.services import Mosquitto, PgBouncer, Postgres, Services


@pytest.fixture(autouse=True)
def services_serving(serving: None, no_secret_ever_shown: None) -> None:
    """Every agent test: the services serving, and the session's secret scan."""


@pytest.fixture(autouse=True)
async def no_task_figures_left_behind(
    request: pytest.FixtureRequest, postgres: Postgres
) -> AsyncIterator[None]:
    """A test of tasks or workers leaves no task figures behind.

    The figures and heartbeats are the database's, not one test queue's: what a test's
    workers counted (a type below its target, a killed worker) would otherwise be judged
    in the health of every test after it, for an hour.
    """
    yield
    named = request.node.nodeid
    if ("task" in named or "worker" in named) and postgres.running:
        await forget_task_figures(postgres.dsn)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 16 MB filesystem of its own (tmpfs), removed after the test; fill it with `fill`."""
    folder = tmp_path / "small-disk"
    folder.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(folder)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        reason = f"cannot mount a small tmpfs here: {mounted.stderr.decode().strip()}"
        # Only root may mount: as root (the set-up `make test` expects, and CI) a mount
        # that fails is a broken machine, not a reason to leave the full disk untested.
        if os.geteuid() == 0:
            pytest.fail(reason)
        pytest.skip(f"{reason} (mounting needs root)")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


@pytest.fixture
async def figures_database(postgres: Postgres, test_id: str) -> AsyncIterator[str]:
    """A database of this test's own, so no other test's task figures are counted."""
    name = f"slo_{test_id[:40]}"
    admin = await asyncpg.connect(postgres.dsn)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield f"{postgres.dsn.rsplit('/', 1)[0]}/{name}"
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture(scope="session")
def small_pgbouncer(services: Services) -> PgBouncer:
    """A PgBouncer easily exhausted: 2 server connections, 12 clients, 1 s to wait for a server."""
    return services.pgbouncer_with_limits(
        "pgbouncer-small", default_pool_size=2, max_client_conn=12, query_wait_timeout=1
    )


@pytest.fixture
async def runs_table(postgres: Postgres) -> None:
    """The table the test task handlers note their runs in."""
    await create_runs_table(postgres.dsn)


@pytest.fixture
def watch(mosquitto: Mosquitto, test_id: str) -> Iterator[Callable[..., Watcher]]:
    """Start MQTT watchers on topics; all are closed after the test."""
    watchers: list[Watcher] = []

    def start(*topics: str) -> Watcher:
        watcher = Watcher(mosquitto.port, f"{test_id}-watch{len(watchers)}", list(topics))
        watchers.append(watcher)
        return watcher

    yield start
    for watcher in watchers:
        watcher.close()


@pytest.fixture
async def endpoint() -> AsyncIterator[Endpoint]:
    """A real HTTP server on a free loopback port, in the test's event loop."""
    cdn = CacheStatus()
    app = web.Application()
    app.router.add_get("/cached", _cached)
    app.router.add_get("/error", _server_error)
    app.router.add_get("/no-etag", _no_etag)
    app.router.add_get("/ignores-if-none-match", _ignores_if_none_match)
    app.router.add_get("/plain", _plain)
    app.router.add_get("/cdn", cdn.answer)
    app.router.add_get("/slow", _slow)
    app.router.add_get("/loop{tail:.*}", _redirect_to_itself)
    app.router.add_get("/huge", _huge)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield Endpoint(f"http://127.0.0.1:{port}", cdn)
    finally:
        await runner.cleanup()


# An HTTP endpoint with one route per behaviour the HTTP probe must recognise --------


async def _cached(request: web.Request) -> web.Response:
    if request.headers.get("If-None-Match") == ETAG:
        return web.Response(status=304, headers={"ETag": ETAG})
    # The full answer is slow, as an uncached API is; the 304 is immediate.
    await asyncio.sleep(0.05)
    headers = {"ETag": ETAG, "Cache-Control": "max-age=60", "X-Cache": "HIT"}
    return web.json_response({"ok": True}, headers=headers)


async def _server_error(request: web.Request) -> web.Response:
    return web.Response(status=500, text="boom")


async def _no_etag(request: web.Request) -> web.Response:
    return web.json_response({"ok": True}, headers={"Cache-Control": "max-age=60"})


async def _ignores_if_none_match(request: web.Request) -> web.Response:
    return web.json_response({"ok": True}, headers={"ETag": ETAG, "Cache-Control": "max-age=60"})


async def _plain(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


async def _slow(request: web.Request) -> web.Response:
    await asyncio.sleep(30)
    return web.json_response({"ok": True})


async def _redirect_to_itself(request: web.Request) -> web.Response:
    # The query (a token, say) comes along each time, until the client gives up.
    raise web.HTTPFound(request.rel_url)


_CHUNK = b"x" * (1024 * 1024)


async def _huge(request: web.Request) -> web.StreamResponse:
    """A 512 MiB answer, streamed: it costs the server no memory, only the reader."""
    response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
    await response.prepare(request)
    try:
        for _ in range(HUGE_BODY_BYTES // len(_CHUNK)):
            await response.write(_CHUNK)
    except ConnectionError:
        pass  # the probe read what it needed and hung up
    return response
