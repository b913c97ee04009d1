"""Test helpers for the agent: its config, its process, a publisher, and what reached the queue."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import paho.mqtt.client as paho
import yaml
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

REPO = Path(__file__).resolve().parents[2]
# Every DSN and broker password of the agent's tests carries this secret (the throwaway
# servers trust loopback and ignore it); nothing the suite produces may ever show it.
TEST_SECRET = "Farm-Secret-d41d8c"
# What the agent printed or served during the session, scanned for TEST_SECRET at the end.
SEEN_OUTPUT: list[str] = []


def with_secret(dsn: str) -> str:
    """The same DSN with TEST_SECRET as its password."""
    scheme, rest = dsn.split("://", 1)
    user, host = rest.split("@", 1)
    return f"{scheme}://{user.split(':')[0]}:{TEST_SECRET}@{host}"


def agent_config(
    tmp_path: Path,
    *,
    agent_id: str,
    mqtt_port: int,
    pooler_dsn: str | None,
    direct_dsn: str | None,
    queue: str,
    topics: list[str] | None = None,
    **sections: dict[str, Any],
) -> dict[str, Any]:
    """A config document for one test: its own queues, spool and topics."""
    config: dict[str, Any] = {
        "agent_id": agent_id,
        "mqtt": {"host": "127.0.0.1", "port": mqtt_port, "topics": topics or [f"{agent_id}/#"]},
        "backend": {
            "pooler_dsn": pooler_dsn,
            "direct_dsn": direct_dsn,
            "queue": queue,
            "dead_letter_queue": f"{queue}_dlq",
            "batch_interval_ms": 50,
            "failback_interval_s": 1,
            "connect_timeout_s": 2,
        },
        "spool": {"path": str(tmp_path / f"{agent_id}-spool.db")},
        "http": {"listen": "127.0.0.1:0"},
        "log_level": "info",
    }
    for section, values in sections.items():
        if isinstance(config.get(section), dict):
            config[section].update(values)
        else:
            config[section] = values
    return config


def write_config(path: Path, config: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


class AgentProcess:
    """`farm-agent run` as a real process, so a test can SIGTERM or SIGKILL it."""

    def __init__(self, config_path: Path, env: dict[str, str] | None = None) -> None:
        self.config_path = config_path
        self.log_path = config_path.with_suffix(".log")
        self.env = {**os.environ, **(env or {})}
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self, extra_env: dict[str, str] | None = None) -> None:
        assert self.process is None or self.process.poll() is not None, "already running"
        self.starts += 1
        with self.log_path.open("ab") as log:
            log.write(f"--- start {self.starts}\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                [sys.executable, "-m", "farm_agent", "run", "--config", str(self.config_path)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**self.env, **(extra_env or {})},
                cwd=REPO,
            )

    def wait_connected(self, timeout: float = 20) -> None:
        """Until the log says both MQTT and the database route are up."""
        deadline = time.monotonic() + timeout
        marker = f"--- start {self.starts}"
        while time.monotonic() < deadline:
            text = self.log().split(marker)[-1]
            if ": connected" in text and "backend route:" in text:
                return
            assert self.running, f"agent exited early:\n{text[-3000:]}"
            time.sleep(0.05)
        raise AssertionError(f"agent not connected after {timeout} s:\n{self.log()[-3000:]}")

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        if self.running:
            assert self.process is not None
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def terminate(self, timeout: float = 15) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def wait_exit(self, timeout: float) -> int:
        assert self.process is not None
        return self.process.wait(timeout)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.running:
            try:
                self.terminate()
            except subprocess.TimeoutExpired:
                self.kill()


class Publisher:
    """A farm device: publishes QoS 1 readings and waits for the broker's PUBACK.

    `persistent` keeps an MQTT 3.1.1 session on the broker, so in-flight QoS 2 messages
    survive a broker restart exactly once (chaos tests); otherwise MQTT 5, no session.
    """

    def __init__(self, port: int, client_id: str, *, persistent: bool = False) -> None:
        if persistent:
            self.client = paho.Client(
                CallbackAPIVersion.VERSION2,
                client_id=client_id,
                protocol=MQTTProtocolVersion.MQTTv311,
                clean_session=False,
            )
        else:
            self.client = paho.Client(
                CallbackAPIVersion.VERSION2,
                client_id=client_id,
                protocol=MQTTProtocolVersion.MQTTv5,
            )
        self.client.max_inflight_messages_set(1000)
        self.client.max_queued_messages_set(0)
        self._acked: set[int] = set()
        self._acked_changed = threading.Condition()
        self.client.on_publish = self._on_publish
        connected = threading.Event()
        self.client.on_connect = lambda *args: connected.set()
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert connected.wait(10), "publisher could not connect"

    def _on_publish(self, client: paho.Client, userdata: Any, mid: int, *args: Any) -> None:
        with self._acked_changed:
            self._acked.add(mid)
            self._acked_changed.notify_all()

    def publish(self, topic: str, payload: bytes | str, *, qos: int = 1, wait: bool = False) -> int:
        """Queue one reading (paho sends it now, or after a reconnect); returns its packet id."""
        mid = self.client.publish(topic, payload, qos=qos).mid
        if wait:
            self.wait_acked([mid], 10)
        return mid

    def wait_acked(self, mids: list[int], timeout: float) -> None:
        """Until the broker acknowledged every one of these packets (across reconnects)."""
        pending = set(mids)
        deadline = time.monotonic() + timeout
        with self._acked_changed:
            while pending - self._acked:
                remaining = deadline - time.monotonic()
                assert remaining > 0, f"{len(pending - self._acked)} readings never acknowledged"
                self._acked_changed.wait(min(remaining, 1.0))
            self._acked -= pending

    def publish_all(self, readings: list[tuple[str, bytes | str]]) -> None:
        self.wait_acked([self.publish(topic, payload) for topic, payload in readings], 30)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


async def queue_messages(dsn: str, queue: str) -> list[dict[str, Any]]:
    """Every envelope in a PGMQ queue, oldest first (empty if the queue does not exist yet)."""
    connection = await asyncpg.connect(dsn)
    try:
        exists = await connection.fetchval("SELECT to_regclass($1) IS NOT NULL", f"pgmq.q_{queue}")
        if not exists:
            return []
        rows = await connection.fetch(f"SELECT message FROM pgmq.q_{queue} ORDER BY msg_id")
    finally:
        await connection.close()
    return [json.loads(row["message"]) for row in rows]


async def wait_for_messages(
    dsn: str, queue: str, count: int, timeout: float = 60
) -> list[dict[str, Any]]:
    """Poll the queue until it holds at least `count` envelopes (or time runs out); return them."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await queue_length(dsn, queue) >= count:
            break
        await asyncio.sleep(0.2)
    return await queue_messages(dsn, queue)


async def queue_length(dsn: str, queue: str) -> int:
    connection = await asyncpg.connect(dsn)
    try:
        if not await connection.fetchval("SELECT to_regclass($1) IS NOT NULL", f"pgmq.q_{queue}"):
            return 0
        return int(await connection.fetchval(f"SELECT count(*) FROM pgmq.q_{queue}"))
    finally:
        await connection.close()


def http_port(agent_log: str) -> int | None:
    """The ephemeral port of the agent's HTTP endpoint, from its log."""
    for line in reversed(agent_log.splitlines()):
        if "http endpoint on" in line:
            return int(line.rsplit(":", 1)[1].split()[0].rstrip("/"))
    return None


def fetch(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            status, body = int(response.status), response.read().decode()
    except urllib.error.HTTPError as err:
        status, body = int(err.code), err.read().decode()
    SEEN_OUTPUT.append(body)
    return status, body


def farm_agent_cli(
    *args: str, env: dict[str, str] | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a `farm-agent` command to completion; its output joins SEEN_OUTPUT."""
    result = subprocess.run(
        [sys.executable, "-m", "farm_agent", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        env=env,
        input=stdin,
        check=False,
    )
    SEEN_OUTPUT.extend((result.stdout, result.stderr))
    return result


@contextlib.contextmanager
def publisher(port: int, client_id: str) -> Iterator[Publisher]:
    device = Publisher(port, client_id)
    try:
        yield device
    finally:
        device.close()


class StreamPublisher:
    """Publishes numbered readings at a steady rate on its own thread, like a field of sensors."""

    def __init__(
        self,
        port: int,
        client_id: str,
        topics: list[str],
        total: int,
        rate: float,
        *,
        qos: int = 1,
    ) -> None:
        self.topics = topics
        self.total = total
        self.rate = rate
        self.qos = qos
        self.sent: list[tuple[str, str]] = []
        self._device = Publisher(port, client_id, persistent=qos == 2)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.done = threading.Event()
        self.error: BaseException | None = None

    def start(self) -> StreamPublisher:
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            self._publish_stream()
        except BaseException as err:  # reported by join(), not lost on a thread
            self.error = err
        self.done.set()

    def _publish_stream(self) -> None:
        started = time.monotonic()
        mids = []
        for index in range(self.total):
            topic = self.topics[index % len(self.topics)]
            payload = json.dumps({"n": index, "value": round(20 + (index % 50) / 10, 1)})
            mids.append(self._device.publish(topic, payload, qos=self.qos))
            self.sent.append((topic, payload))
            delay = started + (index + 1) / self.rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        self._device.wait_acked(mids, 300)

    def join(self, timeout: float = 120) -> None:
        assert self.done.wait(timeout), "publisher did not finish"
        self._device.close()
        if self.error is not None:
            raise self.error


def metric_value(metrics_text: str, name: str, labels: str = "") -> float:
    """One sample of a Prometheus text page, e.g. metric_value(page, "farm_agent_spool_depth")."""
    wanted = f"{name}{{{labels}}}" if labels else name
    for line in metrics_text.splitlines():
        if line.startswith(wanted + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{wanted} not on the metrics page")


def assert_relayed_in_received_order(messages: list[dict[str, Any]]) -> None:
    """The queue holds the readings in the order the agent received them (its spool sequence)."""
    received = [int(message["key"].rsplit(":", 1)[1]) for message in messages]
    inverted = next((i for i in range(1, len(received)) if received[i] < received[i - 1]), None)
    assert inverted is None, (
        f"relayed out of received order at {inverted}: {messages[inverted - 1 : inverted + 1]}"
    )


def assert_exactly_once(
    sent: list[tuple[str, str]], messages: list[dict[str, Any]], *, publish_order: bool = True
) -> None:
    """Every reading once, none twice, and each topic's readings in the order they were sent.

    `publish_order=False` skips the last check, for runs where the broker itself may
    deliver a publisher's readings out of order (a broker restart).
    """
    sent = [(topic, _canonical(json.loads(payload))) for topic, payload in sent]
    received = [(m["topic"], _canonical(m["payload"])) for m in messages]
    keys = [m["key"] for m in messages]
    assert len(keys) == len(set(keys)), "a key reached the queue twice"
    sent_set, received_set = set(sent), set(received)
    missing = sent_set - received_set
    assert not missing, f"{len(missing)} readings lost, e.g. {sorted(missing)[:3]}"
    assert len(received) == len(sent), f"{len(received) - len(sent)} duplicates"
    if not publish_order:
        return
    for topic in {topic for topic, _ in sent}:
        got = [p for t, p in received if t == topic]
        expected = [p for t, p in sent if t == topic]
        if got != expected:
            first = next(i for i, (a, b) in enumerate(zip(got, expected, strict=True)) if a != b)
            in_topic = [m for m in messages if m["topic"] == topic]
            context = [
                (m["key"], m["received_at"], m["payload"])
                for m in in_topic[max(0, first - 3) : first + 4]
            ]
            raise AssertionError(f"readings of {topic} out of order at {first}: {context}")


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def write_version_1_spool(path: Path, spool_id: str, payloads: list[bytes]) -> None:
    """A spool file exactly as version 1 of the agent wrote it."""
    with sqlite3.connect(path) as db:
        db.executescript(
            """
            PRAGMA journal_mode=WAL;
            CREATE TABLE spool_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
            CREATE TABLE readings (
                seq INTEGER PRIMARY KEY AUTOINCREMENT,
                topic TEXT NOT NULL,
                payload BLOB NOT NULL,
                received_at REAL NOT NULL
            );
            CREATE TABLE delivered (
                mid INTEGER PRIMARY KEY, digest BLOB NOT NULL, n INTEGER NOT NULL
            );
            """
        )
        db.execute("INSERT INTO spool_meta VALUES ('spool_id', ?), ('schema', '1')", (spool_id,))
        db.executemany(
            "INSERT INTO readings (topic, payload, received_at)"
            " VALUES ('farm/f1/t', ?, 1795665600)",
            [(payload,) for payload in payloads],
        )
    db.close()
