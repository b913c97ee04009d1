"""`farm-agent work`'s HTTP endpoint: /healthz, /readyz (the database answers), /metrics."""

from __future__ import annotations

import json
from collections.abc import Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from farm_agent.tasks.metrics import TaskMetrics


class WorkerEndpoint:
    """Serves the worker's endpoints on `tasks.listen` (loopback by default)."""

    def __init__(self, metrics: TaskMetrics, database_ok: Callable[[], bool]) -> None:
        self._metrics = metrics
        self._database_ok = database_ok
        self._runner: web.AppRunner | None = None
        self.port: int | None = None
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/metrics", self._metrics_page)
        self._app = app

    async def start(self, host: str, port: int) -> None:
        self._runner = web.AppRunner(self._app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        sockets = getattr(site._server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1] if sockets else port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def _readyz(self, request: web.Request) -> web.Response:
        checks = {"database": self._database_ok()}
        ready = all(checks.values())
        return web.Response(
            text=json.dumps({"ready": ready, "checks": checks}) + "\n",
            status=200 if ready else 503,
            content_type="application/json",
        )

    async def _metrics_page(self, request: web.Request) -> web.Response:
        response = web.Response(body=generate_latest(self._metrics.registry))
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response
