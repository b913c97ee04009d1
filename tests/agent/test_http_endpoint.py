"""The agent's own small HTTP server: what scrapers, health checkers and stray clients get."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from farm_agent.http import HttpEndpoint, agent_endpoint
from farm_agent.metrics import Metrics


@pytest.fixture
async def endpoint() -> AsyncIterator[HttpEndpoint]:
    metrics = Metrics()
    metrics.counter("farm_agent_test_things", "things").inc(3)
    served = agent_endpoint(metrics, lambda: {"mqtt_connected": False}, lambda: '{"status":"ok"}')
    await served.start("127.0.0.1", 0)
    yield served
    await served.stop()


async def exchange(endpoint: HttpEndpoint, request: bytes) -> tuple[str, dict[str, str], bytes]:
    """Send raw bytes; the status line, the headers and the body the server answered."""
    assert endpoint.port is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", endpoint.port)
    writer.write(request)
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    status, *lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines)
    return status, headers, body


async def test_pages_answer_get_with_their_type_and_length_and_close_the_connection(
    endpoint: HttpEndpoint,
) -> None:
    status, headers, body = await exchange(endpoint, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status == "HTTP/1.1 200 OK"
    assert headers["Content-Type"].startswith("text/plain; version=")
    assert int(headers["Content-Length"]) == len(body)
    assert headers["Connection"] == "close"
    assert b"farm_agent_test_things_total 3.0" in body

    status, headers, body = await exchange(endpoint, b"GET /readyz?verbose=1 HTTP/1.0\r\n\r\n")
    assert status == "HTTP/1.1 503 Service Unavailable"
    assert headers["Content-Type"].startswith("application/json")
    assert b'"problems": ["MQTT broker not connected"]' in body


async def test_head_gets_the_headers_without_the_body(endpoint: HttpEndpoint) -> None:
    status, headers, body = await exchange(endpoint, b"HEAD /health HTTP/1.1\r\n\r\n")
    assert status == "HTTP/1.1 200 OK"
    assert int(headers["Content-Length"]) == len(b'{"status":"ok"}\n')
    assert body == b""


async def test_unknown_pages_other_methods_and_garbage_get_clear_errors(
    endpoint: HttpEndpoint,
) -> None:
    assert (await exchange(endpoint, b"GET /nope HTTP/1.1\r\n\r\n"))[0] == "HTTP/1.1 404 Not Found"
    status, headers, _ = await exchange(endpoint, b"POST /metrics HTTP/1.1\r\n\r\n")
    assert status == "HTTP/1.1 405 Method Not Allowed"
    assert headers["Allow"] == "GET, HEAD"
    assert (await exchange(endpoint, b"hello\r\n\r\n"))[0] == "HTTP/1.1 400 Bad Request"


async def test_a_client_that_never_finishes_its_request_does_not_hold_up_stopping(
    endpoint: HttpEndpoint,
) -> None:
    assert endpoint.port is not None
    _, writer = await asyncio.open_connection("127.0.0.1", endpoint.port)
    writer.write(b"GET /metrics HTTP/1.1\r\n")  # and nothing more
    await writer.drain()
    await asyncio.sleep(0.05)  # the server has taken the connection

    await asyncio.wait_for(endpoint.stop(), 5)

    writer.close()


@pytest.mark.parametrize(("disabled", "created"), [(None, True), ("true", False), ("0", True)])
def test_created_series_follow_prometheus_disable_created_series(
    monkeypatch: pytest.MonkeyPatch, disabled: str | None, created: bool
) -> None:
    if disabled is not None:
        monkeypatch.setenv("PROMETHEUS_DISABLE_CREATED_SERIES", disabled)
    else:
        monkeypatch.delenv("PROMETHEUS_DISABLE_CREATED_SERIES", raising=False)
    metrics = Metrics()
    metrics.counter("farm_agent_test_things", "things").inc(3)
    metrics.histogram("farm_agent_test_seconds", "seconds", (0.1, 1.0)).observe(0.5)

    page = metrics.render()[0].decode()

    assert "farm_agent_test_things_total 3.0" in page
    assert 'farm_agent_test_seconds_bucket{le="1.0"} 1.0' in page
    assert ("farm_agent_test_things_created " in page) is created
    assert ("farm_agent_test_seconds_created " in page) is created
