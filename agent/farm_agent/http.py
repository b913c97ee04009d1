"""The agent's HTTP endpoint: /healthz (alive), /readyz (able to relay), /metrics (Prometheus),
and /health (the latest health report, the same JSON as on MQTT).
"""

from __future__ import annotations

import json
from collections.abc import Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from farm_agent.relay.metrics import RelayMetrics

ReadinessCheck = Callable[[], dict[str, bool]]
# What a failing readiness check means, in the words of the health report.
PROBLEMS = {
    "mqtt_connected": "MQTT broker not connected",
    "spool_writable": "spool full",
    "spool_disk": "spool disk full",
    "database_route": "no database route",
}
HealthReport = Callable[[], str | None]


class HttpEndpoint:
    """Serves the endpoints on the configured address (loopback by default)."""

    def __init__(
        self,
        metrics: RelayMetrics,
        readiness: ReadinessCheck,
        health: HealthReport | None = None,
    ) -> None:
        self._metrics = metrics
        self._readiness = readiness
        self._health = health
        self._runner: web.AppRunner | None = None
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/metrics", self._metrics_page)
        app.router.add_get("/health", self._health_report)
        self._app = app
        self.port: int | None = None

    async def start(self, host: str, port: int) -> None:
        self._runner = web.AppRunner(self._app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1] if sockets else port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def _readyz(self, request: web.Request) -> web.Response:
        checks = self._readiness()
        ready = all(checks.values())
        problems = [PROBLEMS.get(name, name) for name, ok in checks.items() if not ok]
        return web.Response(
            text=json.dumps({"ready": ready, "checks": checks, "problems": problems}) + "\n",
            status=200 if ready else 503,
            content_type="application/json",
        )

    async def _metrics_page(self, request: web.Request) -> web.Response:
        body = generate_latest(self._metrics.registry)
        response = web.Response(body=body)
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response

    async def _health_report(self, request: web.Request) -> web.Response:
        report = self._health() if self._health is not None else None
        if report is None:
            # The first probe round has not finished yet.
            return web.json_response({"error": "no health report yet"}, status=503)
        return web.Response(text=report + "\n", content_type="application/json")
