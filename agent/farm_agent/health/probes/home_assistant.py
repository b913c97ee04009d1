"""Home Assistant, as `farm-agent check` sees it: the REST API takes the token, the hub is loaded.

`GET /api/` with the token must answer 200 (401: the token is refused), and the
Farm Resilience hub's entity (`home_assistant.hub_entity`, by default
`binary_sensor.farm_resilience_degraded`) must exist and not be `unavailable`
(`GET /api/states/<entity>`): the integration is set up and its hub loaded. The
token is never shown; errors are cut to where the URL points (`masking.scrub`).
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp

from farm_agent.checks import CheckOutcome, skipped
from farm_agent.config import HomeAssistantConfig
from farm_agent.failures import describe_failure
from farm_agent.masking import mask, scrub

NAME = "home_assistant"
# An answer of the REST API is small; anything past this is not read.
MAX_ANSWER_BYTES = 64 * 1024


async def check_home_assistant(config: HomeAssistantConfig, timeout_s: float) -> CheckOutcome:
    """Whether Home Assistant answers with the token and has the hub loaded."""
    if config.url is None or config.token is None:
        return skipped(NAME, "home_assistant.url is not set")
    base = config.url.rstrip("/")
    headers = {"Authorization": f"Bearer {config.token}", "User-Agent": "farm-agent-check"}
    try:
        async with (
            asyncio.timeout(timeout_s),
            aiohttp.ClientSession(headers=headers) as session,
        ):
            started = time.perf_counter()
            status, _ = await _get(session, f"{base}/api/")
            latency_ms = (time.perf_counter() - started) * 1000
            if status != 200:
                return _failed(_api_refusal(status), latency_ms)
            status, state = await _get(session, f"{base}/api/states/{config.hub_entity}")
    except TimeoutError:
        return _failed(f"no answer within {timeout_s:g} s", None)
    except Exception as err:  # its text may quote the URL: scrubbed
        return _failed(mask(scrub(describe_failure(err), config.url), [config.token]), None)
    return _hub_verdict(config.hub_entity, status, state, latency_ms)


def _hub_verdict(entity: str, status: int, state: Any, latency_ms: float) -> CheckOutcome:
    if status == 404:
        return _failed(f"Farm Resilience hub not loaded: {entity} not found", latency_ms)
    if status != 200 or not isinstance(state, dict):
        return _failed(f"the state of {entity} answered {status}", latency_ms)
    value = state.get("state")
    if value in ("unavailable", None):
        return _failed(f"Farm Resilience hub not loaded: {entity} is unavailable", latency_ms)
    return CheckOutcome(NAME, True, latency_ms, f"API answers; hub loaded ({entity} {value})")


def _api_refusal(status: int) -> str:
    if status in (401, 403):
        return f"the token is refused ({status})"
    return f"the REST API answered {status}, not 200 (is `api:` loaded?)"


def _failed(detail: str, latency_ms: float | None) -> CheckOutcome:
    return CheckOutcome(NAME, False, latency_ms, detail)


async def _get(session: aiohttp.ClientSession, url: str) -> tuple[int, Any]:
    """Status and JSON body (None when it is not JSON) of a GET."""
    async with session.get(url, allow_redirects=False) as response:
        body = await response.content.read(MAX_ANSWER_BYTES)
        try:
            return response.status, json.loads(body)
        except ValueError:
            return response.status, None
