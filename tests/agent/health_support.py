"""Helpers of the health tests: an MQTT watcher, the probes in-process, the queue as a consumer."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
import paho.mqtt.client as paho
from aiohttp import web
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from prometheus_client.parser import text_string_to_metric_families

from farm_agent.config import AgentConfig
from farm_agent.health.judging import Health, assess, first_reachable_route
from farm_agent.mqtt import MqttLink
from farm_agent.health.probes import Prober, ProbeResult, ProbeRound
from farm_agent.relay import idle_snapshot
from tests.agent.support import REPO, SEEN_OUTPUT, AgentProcess, fetch, http_port

ETAG = '"v1-farm"'
# What the test endpoint's /huge streams.
HUGE_BODY_BYTES = 512 * 1024 * 1024


@dataclass(frozen=True)
class Message:
    topic: str
    payload: bytes
    retain: bool

    @property
    def text(self) -> str:
        return self.payload.decode()

    def json(self) -> Any:
        return json.loads(self.payload)


class Watcher:
    """An MQTT client that records every message on its subscriptions, like Home Assistant."""

    def __init__(self, port: int, client_id: str, topics: list[str]) -> None:
        self.messages: list[Message] = []
        self._lock = threading.Lock()
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=MQTTProtocolVersion.MQTTv5
        )
        subscribed = threading.Event()
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *args: subscribed.set()
        self.client.on_connect = lambda client, *args: client.subscribe([(t, 1) for t in topics])
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert subscribed.wait(10), "watcher could not subscribe"

    def _on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        # What the agent publishes is scanned for secrets at the end of the session.
        SEEN_OUTPUT.append(bytes(message.payload).decode(errors="replace"))
        with self._lock:
            self.messages.append(Message(message.topic, bytes(message.payload), message.retain))

    def on(self, topic: str) -> list[Message]:
        with self._lock:
            return [message for message in self.messages if message.topic == topic]

    def clear(self) -> None:
        with self._lock:
            self.messages.clear()

    def publish(self, topic: str, payload: str, retain: bool = False) -> None:
        self.client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(10)

    async def wait_for(
        self,
        topic: str,
        accept: Callable[[Message], bool] = lambda message: True,
        timeout: float = 15,
    ) -> Message:
        """The first message on `topic` (received so far or later) that `accept` likes."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [message for message in self.on(topic) if accept(message)]
            if found:
                return found[0]
            await asyncio.sleep(0.05)
        seen = [(m.topic, m.payload[:200]) for m in self.messages[-5:]]
        raise AssertionError(f"nothing accepted on {topic} within {timeout} s; last: {seen}")

    async def wait_for_health(
        self, topic: str, accept: Callable[[dict[str, Any]], bool], timeout: float = 15
    ) -> dict[str, Any]:
        message = await self.wait_for(topic, lambda m: accept(json.loads(m.payload)), timeout)
        health: dict[str, Any] = message.json()
        return health

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


# The queue as a consumer sees it ----------------------------------------------------


async def create_queues(dsn: str, *queues: str) -> None:
    connection = await asyncpg.connect(dsn)
    try:
        for queue in queues:
            await connection.execute("SELECT pgmq.create($1::text)", queue)
    finally:
        await connection.close()


async def send(dsn: str, queue: str, *messages: dict[str, Any]) -> None:
    """Messages straight into a PGMQ queue, as another producer would."""
    connection = await asyncpg.connect(dsn)
    try:
        for message in messages:
            await connection.execute(
                "SELECT pgmq.send($1::text, $2::jsonb)", queue, json.dumps(message)
            )
    finally:
        await connection.close()


async def archive_finished(
    dsn: str, queue: str, seconds: list[float], hours_ago: float = 0
) -> None:
    """Rows in the queue's archive as if a consumer finished tasks taking `seconds` each."""
    connection = await asyncpg.connect(dsn)
    try:
        table = f'pgmq."a_{queue}"'
        first = await connection.fetchval(f"SELECT coalesce(max(msg_id), 0) + 1 FROM {table}")
        await connection.executemany(
            f"""
            INSERT INTO {table} (msg_id, enqueued_at, archived_at, vt, message)
            VALUES ($1, now() - make_interval(hours => $3) - make_interval(secs => $2),
                    now() - make_interval(hours => $3), now(), '{{}}'::jsonb)
            """,
            [
                (first + index, float(taken), float(hours_ago))
                for index, taken in enumerate(seconds)
            ],
        )
    finally:
        await connection.close()


# The probes in the test's own process -----------------------------------------------


@contextlib.asynccontextmanager
async def running_prober(config: AgentConfig) -> AsyncIterator[Prober]:
    """A Prober on an MQTT link of its own, as `farm-agent check` builds it."""
    mqtt = dataclasses.replace(config.mqtt, client_id=f"{config.mqtt.client_id}-test")
    link = MqttLink(mqtt, asyncio.get_running_loop())
    prober = Prober(config, link)
    link.start()
    try:
        yield prober
    finally:
        await prober.close()
        await link.stop()


def judge(config: AgentConfig, found: ProbeRound) -> Health:
    """The health the agent would publish for this round, with an idle relay."""
    relay = idle_snapshot(first_reachable_route(config, found), config.spool.path)
    return assess(config, found, relay, time.time())


def problems_of(health: Health) -> list[str]:
    return list(health.problems)


def result_named(found: ProbeRound, name: str) -> ProbeResult:
    return next(result for result in found.results if result.name == name)


class CacheStatus:
    """Answers with `CF-Cache-Status` values given in order, to test the hit ratio."""

    def __init__(self) -> None:
        self.statuses: list[str] = []

    async def answer(self, request: web.Request) -> web.Response:
        status = self.statuses.pop(0) if self.statuses else "HIT"
        return web.json_response({"ok": True}, headers={"CF-Cache-Status": status})


@dataclass
class Endpoint:
    base: str
    cdn: CacheStatus

    def url(self, path: str) -> str:
        return f"{self.base}{path}"


@dataclass(frozen=True)
class CliResult:
    returncode: int
    stdout: str
    stderr: str


async def farm_agent(*args: str, stdin: str | None = None, timeout: float = 60) -> CliResult:
    """`farm-agent ...` as a process, awaited, so servers in this event loop keep answering."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "farm_agent",
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=REPO,
    )
    out, err = await asyncio.wait_for(
        process.communicate(stdin.encode() if stdin is not None else b""), timeout
    )
    result = CliResult(int(process.returncode or 0), out.decode(), err.decode())
    SEEN_OUTPUT.extend((result.stdout, result.stderr))
    return result


async def wait_for_http_port(agent: AgentProcess, timeout: float = 20) -> int:
    """The agent's HTTP port, once its log tells it (the agent is then subscribed too)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        log = agent.log()
        port = http_port(log)
        if port is not None and ": connected" in log:
            return port
        assert agent.running, log[-3000:]
        await asyncio.sleep(0.05)
    raise AssertionError(f"agent not up after {timeout} s: {agent.log()[-3000:]}")


def metric_values(text: str) -> dict[str, float]:
    """`name{labels}` -> value of every sample on a /metrics page."""
    return {
        f"{sample.name}{_labels(sample.labels)}": sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _labels(labels: dict[str, str]) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{key}="{value}"' for key, value in sorted(labels.items())) + "}"


async def wait_for_metric(
    port: int, sample: str, at_least: float, timeout: float = 20
) -> dict[str, float]:
    """Poll /metrics until `sample` reaches `at_least`; returns every sample then."""
    deadline = time.monotonic() + timeout
    values: dict[str, float] = {}
    while time.monotonic() < deadline:
        _, text = await asyncio.to_thread(fetch, f"http://127.0.0.1:{port}/metrics")
        values = metric_values(text)
        if values.get(sample, -1) >= at_least:
            return values
        await asyncio.sleep(0.1)
    raise AssertionError(f"{sample} stayed at {values.get(sample)} (< {at_least})")
