"""The two relays under test, each a real process: the agent (`farm_agent run`) and the baseline."""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from bench.layout import REPO
from bench.procinfo import peak_rss_bytes, rss_bytes
from tools import agent_process
from tools.services import free_port

READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 20.0


class RelayProcess:
    """A relay process with its log in the work folder; subclasses say how to start it."""

    name = "relay"

    def __init__(self, folder: Path, queue: str) -> None:
        self.folder = folder
        self.queue = queue
        self.log_path = folder / f"{self.name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        raise NotImplementedError

    def is_ready(self) -> bool:
        raise NotImplementedError

    def start_and_wait(self) -> float:
        """Start the process; seconds from spawning it until it is ready to relay."""
        started = time.perf_counter()
        self.start()
        deadline = started + READY_TIMEOUT_S
        while not self.is_ready():
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited early; see {self.log_tail()}")
            if time.perf_counter() > deadline:
                raise RuntimeError(f"{self.name} not ready after {READY_TIMEOUT_S:.0f} s")
            time.sleep(0.002)
        return time.perf_counter() - started

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def rss(self) -> int:
        return rss_bytes(self.pid)

    def peak_rss(self) -> int:
        return peak_rss_bytes(self.pid)

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()
        self.process = None

    def log_tail(self) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return text[-3000:]


class AgentProcess(RelayProcess):
    """`python -m farm_agent run --config …`, ready when its /readyz answers 200.

    Readiness and the pages are asked of the agent through `tools.agent_process`, the
    one helper the tests and the demo use too.
    """

    name = "agent"

    def __init__(
        self,
        folder: Path,
        *,
        mqtt_port: int,
        pooler_dsn: str,
        direct_dsn: str,
        queue: str,
        topic: str,
    ) -> None:
        super().__init__(folder, queue)
        self.http_port = free_port()
        self.config: dict[str, Any] = {
            "agent_id": "bench",
            "mqtt": {"host": "127.0.0.1", "port": mqtt_port, "topics": [topic]},
            "backend": {
                "pooler_dsn": pooler_dsn,
                "direct_dsn": direct_dsn,
                "queue": queue,
                "dead_letter_queue": f"{queue}_dlq",
            },
            "spool": {"path": str(folder / "spool.db")},
            "http": {"listen": f"127.0.0.1:{self.http_port}"},
        }
        self.config_path = folder / "agent.yaml"
        self.config_path.write_text(yaml.safe_dump(self.config, sort_keys=False))
        self._agent = agent_process.AgentProcess(self.config_path, log_path=self.log_path)

    @property
    def batch_size(self) -> int:
        return int(self._backend_default("batch_size"))

    @property
    def batch_interval_ms(self) -> int:
        return int(self._backend_default("batch_interval_ms"))

    @property
    def receive_maximum(self) -> int:
        return int(self._loaded().mqtt.receive_maximum)

    def _loaded(self) -> Any:
        from farm_agent.config_file import load_config  # noqa: PLC0415 - the agent's own defaults

        return load_config(str(self.config_path))

    def _backend_default(self, key: str) -> Any:
        return getattr(self._loaded().backend, key)

    def start(self) -> None:
        self._agent.start()
        self.process = self._agent.process

    def is_ready(self) -> bool:
        return self._agent.is_ready()

    def metric(self, name: str) -> float:
        """One unlabelled sample from /metrics, e.g. farm_agent_spool_depth."""
        for line in self._agent.metrics().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[-1])
        raise KeyError(name)

    def route(self) -> str:
        return self._agent.route()


class BaselineProcess(RelayProcess):
    """`python -m bench.baseline`: ready when it says so (subscribed, database connected)."""

    name = "baseline"

    def __init__(
        self,
        folder: Path,
        *,
        mqtt_port: int,
        dsn: str,
        queue: str,
        topic: str,
        batch_size: int,
        batch_interval_ms: int,
        receive_maximum: int,
    ) -> None:
        super().__init__(folder, queue)
        self._argv = [
            sys.executable,
            "-m",
            "bench.baseline",
            f"--port={mqtt_port}",
            f"--dsn={dsn}",
            f"--queue={queue}",
            f"--topic={topic}",
            f"--batch-size={batch_size}",
            f"--batch-interval-ms={batch_interval_ms}",
            f"--receive-maximum={receive_maximum}",
        ]

    def start(self) -> None:
        """Readiness comes on stdout (one JSON line), the log on stderr."""
        assert self.process is None or self.process.poll() is not None, "already running"
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self._argv,
                stdout=subprocess.PIPE,
                stderr=log,
                stdin=subprocess.DEVNULL,
                cwd=REPO,
            )

    def is_ready(self) -> bool:
        assert self.process is not None
        assert self.process.stdout is not None
        if self.process.poll() is not None:
            return False
        line = self.process.stdout.readline()
        with contextlib.suppress(ValueError):
            return bool(json.loads(line).get("ready"))
        return False
