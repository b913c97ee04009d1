"""`farm-agent run` (or `work`) as a real process: for the tests, the benchmarks and the demo.

Ready when its /readyz answers 200 (the agent: broker connected and the readings'
subscription granted, spool writable, a database route; the worker: its database
answers), never when a log line appears.
The HTTP port is the configured one, or, for `:0`, the one the process logs it took.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
START_MARKER = "--- start {}"
# `http endpoint on http://127.0.0.1:9102/`, logged by both commands when they listen.
ENDPOINT_LOG = "http endpoint on http://"
POLL_S = 0.02


class AgentProcess:
    """One `farm-agent` process at a time from a config file; `start()` again after it ends."""

    def __init__(
        self,
        config_path: Path,
        env: dict[str, str] | None = None,
        *,
        command: str = "run",
        log_path: Path | None = None,
        own_session: bool = False,
    ) -> None:
        self.config_path = config_path
        self.command = command
        self.log_path = log_path or config_path.with_suffix(".log")
        self.env = {**os.environ, **(env or {})}
        # A session of its own: Ctrl-C in a terminal reaches the caller only, which stops it.
        self.own_session = own_session
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self._listen = _listen_address(config_path, command)

    def start(self, extra_env: dict[str, str] | None = None) -> None:
        assert not self.running, "already running"
        self.starts += 1
        with self.log_path.open("ab") as log:
            log.write(f"{START_MARKER.format(self.starts)}\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "farm_agent",
                    self.command,
                    "--config",
                    str(self.config_path),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**self.env, **(extra_env or {})},
                cwd=REPO,
                start_new_session=self.own_session,
            )

    # readiness and the HTTP endpoint --------------------------------------------------

    def is_serving(self) -> bool:
        """Whether the endpoint answers at all (ready or not)."""
        try:
            self.get("/healthz")
        except (OSError, LookupError):
            return False
        return True

    def is_ready(self) -> bool:
        """Whether /readyz answers 200 now."""
        try:
            status, _ = self.get("/readyz")
        except (OSError, LookupError):
            return False
        return status == 200

    def wait_ready(self, timeout: float = 20) -> None:
        """Until /readyz answers 200; fails at once, with the log, if the process ends."""
        deadline = time.monotonic() + timeout
        while not self.is_ready():
            assert self.running, f"farm-agent {self.command} exited early:\n{self.log_tail()}"
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"farm-agent {self.command} not ready after {timeout} s "
                    f"(/readyz: {self._readyz_text()}):\n{self.log_tail()}"
                )
            time.sleep(POLL_S)

    @property
    def http_port(self) -> int | None:
        """The endpoint's port: configured, or (for `:0`) logged by this start; None if off."""
        if self._listen is None:
            return None
        if self._listen[1] != 0:
            return self._listen[1]
        for line in reversed(self.log(this_start=True).splitlines()):
            if ENDPOINT_LOG in line:
                return int(line.rsplit(":", 1)[1].split("/")[0])
        return None

    def get(self, path: str) -> tuple[int, str]:
        """GET a page of the endpoint; raises LookupError while the port is unknown."""
        port = self.http_port
        if port is None:
            raise LookupError(f"no HTTP endpoint known for {self.config_path}")
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        try:
            connection.request("GET", path)
            response = connection.getresponse()
            return response.status, response.read().decode()
        finally:
            connection.close()

    def readiness(self) -> dict[str, Any]:
        """The /readyz answer: `ready`, `checks` and (the agent) `problems`."""
        _, body = self.get("/readyz")
        return dict(json.loads(body))

    def metrics(self) -> str:
        status, page = self.get("/metrics")
        assert status == 200, f"/metrics answered {status}"
        return page

    def health(self) -> dict[str, Any] | None:
        """The latest health report (`run` only); None before the first probe round."""
        status, body = self.get("/health")
        return dict(json.loads(body)) if status == 200 else None

    def problems(self) -> list[str]:
        """The latest health report's problems; none before the first report."""
        report = self.health()
        return list(report["problems"]) if report is not None else []

    def route(self) -> str:
        """The database route the relay uses now, from /metrics (`none` without one)."""
        for line in self.metrics().splitlines():
            if line.startswith("farm_agent_backend_route{") and line.endswith(" 1.0"):
                return line.split('"')[1]
        return "none"

    def _readyz_text(self) -> str:
        try:
            return self.get("/readyz")[1].strip()
        except (OSError, LookupError) as err:
            return f"no answer ({err.__class__.__name__})"

    # the process ----------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def kill(self) -> None:
        if self.running:
            assert self.process is not None
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def terminate(self, timeout: float = 15) -> int:
        """SIGTERM, and its exit code once it has drained."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def wait_exit(self, timeout: float) -> int:
        assert self.process is not None
        return self.process.wait(timeout)

    @property
    def returncode(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def stop(self) -> None:
        """Stop it if it runs: SIGTERM, then SIGKILL if it does not drain in time."""
        if self.running:
            try:
                self.terminate()
            except subprocess.TimeoutExpired:
                self.kill()

    def log(self, *, this_start: bool = False) -> str:
        """The log of every start, or of the current one only."""
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return text.split(START_MARKER.format(self.starts))[-1] if this_start else text

    def log_tail(self, chars: int = 3000) -> str:
        return self.log()[-chars:]


def _listen_address(config_path: Path, command: str) -> tuple[str, int] | None:
    """Where the command's endpoint listens, from the config file (None: turned off)."""
    config = yaml.safe_load(config_path.read_text()) or {}
    if command == "work":
        listen = (config.get("tasks") or {}).get("listen", "127.0.0.1:9103")
    else:
        section = config.get("http", {})
        listen = None if section is None else section.get("listen", "127.0.0.1:9102")
    if listen is None:
        return None
    host, _, port = str(listen).rpartition(":")
    return host.strip("[]") or "127.0.0.1", int(port)
