"""HTTP endpoints: /healthz (alive), /readyz (every readiness check passes), /metrics (Prometheus).

`farm-agent run` serves one on `http.listen`, with /health (the latest health report,
the same JSON as on MQTT) besides; `farm-agent work` serves one on `tasks.listen`.

A few fixed GET pages need no web framework: this is a small HTTP/1.1 server on
asyncio streams. aiohttp's server would load aiohttp whole (its client, yarl,
multidict and more), megabytes a daemon on a Raspberry Pi carries for nothing
unless HTTP probes are configured. One request per connection (`Connection:
close`), GET and HEAD only, a request head of at most MAX_HEAD_BYTES read within
REQUEST_TIMEOUT_S: scrapers and health checkers need no more.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from http import HTTPStatus

from farm_agent.metrics import Metrics

REQUEST_TIMEOUT_S = 10.0
MAX_HEAD_BYTES = 8192
TEXT = "text/plain; charset=utf-8"
JSON = "application/json; charset=utf-8"


@dataclass(frozen=True, slots=True)
class Reply:
    """What a page answers."""

    status: int
    body: bytes
    content_type: str = TEXT


ReadinessCheck = Callable[[], dict[str, bool]]
HealthReport = Callable[[], str | None]
# A page answers at once, or awaits first (e.g. /metrics loading its renderer off the loop).
Page = Callable[[], Reply | Awaitable[Reply]]
# What a failing readiness check of the running agent means, in the words of its health report.
AGENT_PROBLEMS = {
    "mqtt_connected": "MQTT broker not connected",
    "mqtt_subscribed": "MQTT broker has not granted the readings' subscription",
    "spool_writable": "spool full",
    "spool_disk": "spool disk full",
    "database_route": "no database route",
}


def json_reply(value: object, status: int = 200) -> Reply:
    return Reply(status, (json.dumps(value) + "\n").encode(), JSON)


class HttpEndpoint:
    """Serves the endpoints on the configured address (loopback by default).

    With `problems`, /readyz also says in words what each failing check means.
    """

    def __init__(
        self,
        metrics: Metrics,
        readiness: ReadinessCheck,
        problems: Mapping[str, str] | None = None,
    ) -> None:
        self._metrics = metrics
        self._readiness = readiness
        self._problems = problems
        self._pages: dict[str, Page] = {}
        self._server: asyncio.Server | None = None
        # Connections being answered: closed by `stop`, so it never waits on a slow client.
        self._writers: set[asyncio.StreamWriter] = set()
        self.add_page("/healthz", lambda: Reply(200, b"ok\n"))
        self.add_page("/readyz", self._readyz)
        self.add_page("/metrics", self._metrics_page)
        self.port: int | None = None

    def add_page(self, path: str, page: Page) -> None:
        """Serve `page` on GET (and HEAD) `path`."""
        self._pages[path] = page

    async def start(self, host: str, port: int) -> None:
        self._server = await asyncio.start_server(self._serve, host, port, limit=MAX_HEAD_BYTES)
        sockets = self._server.sockets
        self.port = sockets[0].getsockname()[1] if sockets else port

    async def stop(self) -> None:
        if self._server is None:
            return
        self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT_S):
                head = await reader.readuntil(b"\r\n\r\n")
                method, reply = await self._answer(head)
                writer.write(_encode(reply, with_body=method != "HEAD"))
                await writer.drain()
        except (
            TimeoutError,
            ConnectionError,
            asyncio.IncompleteReadError,
            asyncio.LimitOverrunError,
        ):
            pass  # the client went, or never said what it wanted: nothing to answer
        finally:
            self._writers.discard(writer)
            writer.close()
            with contextlib.suppress(ConnectionError, TimeoutError):
                await writer.wait_closed()

    async def _answer(self, head: bytes) -> tuple[str, Reply]:
        """The request's method and the reply to it."""
        request_line = head.split(b"\r\n", 1)[0].decode("latin-1").split()
        if len(request_line) != 3 or not request_line[2].startswith("HTTP/1."):
            return "GET", Reply(400, b"400: Bad Request\n")
        method, target, _ = request_line
        page = self._pages.get(target.split("?", 1)[0])
        if page is None:
            return method, Reply(404, b"404: Not Found\n")
        if method not in ("GET", "HEAD"):
            return method, Reply(405, b"405: Method Not Allowed\n")
        reply = page()
        return method, reply if isinstance(reply, Reply) else await reply

    def _readyz(self) -> Reply:
        checks = self._readiness()
        ready = all(checks.values())
        body: dict[str, object] = {"ready": ready, "checks": checks}
        if self._problems is not None:
            body["problems"] = [
                self._problems.get(name, name) for name, ok in checks.items() if not ok
            ]
        return json_reply(body, 200 if ready else 503)

    async def _metrics_page(self) -> Reply:
        await self._metrics.load_renderer()
        body, content_type = self._metrics.render()
        return Reply(200, body, content_type)


def _encode(reply: Reply, *, with_body: bool) -> bytes:
    phrase = HTTPStatus(reply.status).phrase
    head = (
        f"HTTP/1.1 {reply.status} {phrase}\r\n"
        f"Content-Type: {reply.content_type}\r\n"
        f"Content-Length: {len(reply.body)}\r\n"
        "Connection: close\r\n" + ("Allow: GET, HEAD\r\n" if reply.status == 405 else "") + "\r\n"
    )
    return head.encode("latin-1") + (reply.body if with_body else b"")


def agent_endpoint(
    metrics: Metrics, readiness: ReadinessCheck, health: HealthReport
) -> HttpEndpoint:
    """The running agent's endpoint: the three pages, and /health."""
    endpoint = HttpEndpoint(metrics, readiness, AGENT_PROBLEMS)

    def health_report() -> Reply:
        report = health()
        if report is None:
            # The first probe round has not finished yet.
            return json_reply({"error": "no health report yet"}, 503)
        return Reply(200, (report + "\n").encode(), JSON)

    endpoint.add_page("/health", health_report)
    return endpoint
