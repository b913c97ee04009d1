"""What the daemon loads: only what its configuration uses (memory on a Raspberry Pi-class host)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from farm_agent import __version__
from tests.support.agent import python_snippet, write_config
from tests.support.metrics import metric_value
from tools.services import free_port

ConfigMaker = Callable[..., dict[str, Any]]
# Libraries the daemon has no use for unless its configuration asks: the console
# tables of the commands that print, the HTTP client of the HTTP probes, the plots
# of the weekly review.
# prometheus_client too, until /metrics is read: many farms never scrape it. PyYAML,
# voluptuous and the schema read the config in a child process (config_reader).
NOT_FOR_THE_DAEMON = (
    "rich",
    "aiohttp",
    "yarl",
    "multidict",
    "matplotlib",
    "prometheus_client",
    "yaml",
    "voluptuous",
    "farm_agent.config_file",
)

# `farm-agent run` in this process: which of those libraries it had loaded once
# ready, then after one scrape of /metrics; then stopped (SIGTERM, as systemd does).
RUN_UNTIL_READY = """
import http.client, json, os, signal, sys, threading, time

from farm_agent.commands.cli import main

port, config_path, unwanted = int(sys.argv[1]), sys.argv[2], sys.argv[3].split(",")
seen = {"ready": False}


def loaded() -> list[str]:
    return sorted(name for name in unwanted if name in sys.modules)


def get(path: str) -> tuple[int, str]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    connection.request("GET", path)
    response = connection.getresponse()
    return response.status, response.read().decode()


def stop_once_ready() -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not seen["ready"]:
        try:
            seen["ready"] = get("/readyz")[0] == 200
        except OSError:
            pass
        time.sleep(0.1)
    seen["loaded"] = loaded()
    if seen["ready"]:
        seen["metrics"] = get("/metrics")
        seen["loaded_after_scrape"] = loaded()
    os.kill(os.getpid(), signal.SIGTERM)


threading.Thread(target=stop_once_ready, daemon=True).start()
seen["exit"] = main(["run", "--config", config_path])
print(json.dumps(seen))
"""


def test_an_agent_without_http_probes_loads_no_http_client_and_prometheus_only_when_scraped(
    make_config: ConfigMaker, tmp_path: Path
) -> None:
    port = free_port()
    config = make_config(http={"listen": f"127.0.0.1:{port}"})
    assert not config.get("probes", {}).get("http")
    path = write_config(tmp_path / "agent.yaml", config)

    finished = python_snippet(RUN_UNTIL_READY, str(port), str(path), ",".join(NOT_FOR_THE_DAEMON))

    assert finished.returncode == 0, finished.stderr[-3000:]
    outcome = json.loads(finished.stdout.strip().splitlines()[-1])
    assert outcome["exit"] == 0, finished.stderr[-3000:]
    assert outcome["ready"] is True, finished.stderr[-3000:]
    assert outcome["loaded"] == []
    # The first scrape loads prometheus_client, and the page has the agent's figures.
    status, page = outcome["metrics"]
    assert status == 200
    assert metric_value(page, "farm_agent_build_info", version=__version__) == 1
    assert metric_value(page, "farm_agent_backend_route", route="none") in (0, 1)
    assert metric_value(page, "farm_agent_readings_received_total") == 0
    assert outcome["loaded_after_scrape"] == ["prometheus_client"]
