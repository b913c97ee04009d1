"""HTTP endpoints: /healthz (alive), /readyz (every readiness check passes), /metrics (Prometheus).

`farm-agent run` serves one on `http.listen`, with /health (the latest health report,
the same JSON as on MQTT) besides; `farm-agent work` serves one on `tasks.listen`.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

ReadinessCheck = Callable[[], dict[str, bool]]
HealthReport = Callable[[], str | None]
Page = Callable[[web.Request], Awaitable[web.StreamResponse]]
# What a failing readiness check of the running agent means, in the words of its health report.
AGENT_PROBLEMS = {
    "mqtt_connected": "MQTT broker not connected",
    "spool_writable": "spool full",
    "spool_disk": "spool disk full",
    "database_route": "no database route",
}


class HttpEndpoint:
    """Serves the endpoints on the configured address (loopback by default).

    With `problems`, /readyz also says in words what each failing check means.
    """

    def __init__(
        self,
        registry: CollectorRegistry,
        readiness: ReadinessCheck,
        problems: Mapping[str, str] | None = None,
    ) -> None:
        self._registry = registry
        self._readiness = readiness
        self._problems = problems
        self._runner: web.AppRunner | None = None
        self._app = web.Application()
        self.add_page("/healthz", self._healthz)
        self.add_page("/readyz", self._readyz)
        self.add_page("/metrics", self._metrics_page)
        self.port: int | None = None

    def add_page(self, path: str, page: Page) -> None:
        """Serve `page` on GET `path` (before `start`)."""
        self._app.router.add_get(path, page)

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
        checks = self._readiness()
        ready = all(checks.values())
        body: dict[str, object] = {"ready": ready, "checks": checks}
        if self._problems is not None:
            body["problems"] = [
                self._problems.get(name, name) for name, ok in checks.items() if not ok
            ]
        return web.Response(
            text=json.dumps(body) + "\n",
            status=200 if ready else 503,
            content_type="application/json",
        )

    async def _metrics_page(self, request: web.Request) -> web.Response:
        response = web.Response(body=generate_latest(self._registry))
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response


def agent_endpoint(
    registry: CollectorRegistry, readiness: ReadinessCheck, health: HealthReport
) -> HttpEndpoint:
    """The running agent's endpoint: the three pages, and /health."""
    endpoint = HttpEndpoint(registry, readiness, AGENT_PROBLEMS)

    async def health_report(request: web.Request) -> web.Response:
        report = health()
        if report is None:
            # The first probe round has not finished yet.
            return web.json_response({"error": "no health report yet"}, status=503)
        return web.Response(text=report + "\n", content_type="application/json")

    endpoint.add_page("/health", health_report)
    return endpoint
