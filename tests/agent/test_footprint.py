"""What the daemon loads: only what its configuration uses (memory on a Raspberry Pi-class host)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.support.agent import REPO, SEEN_OUTPUT, write_config
from tools.services import free_port

ConfigMaker = Callable[..., dict[str, Any]]
# Libraries the daemon has no use for unless its configuration asks: the console
# tables of the commands that print, the HTTP client of the HTTP probes, the plots
# of the weekly review.
NOT_FOR_THE_DAEMON = ("rich", "aiohttp", "yarl", "multidict", "matplotlib")

# `farm-agent run` in this process: stopped (SIGTERM, as systemd does) once it is
# ready; then which of those libraries it had loaded.
RUN_UNTIL_READY = """
import http.client, json, os, signal, sys, threading, time

from farm_agent.commands.cli import main

port, config_path, unwanted = int(sys.argv[1]), sys.argv[2], sys.argv[3].split(",")
seen_ready = []


def stop_once_ready() -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not seen_ready:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", "/readyz")
            if connection.getresponse().status == 200:
                seen_ready.append(True)
        except OSError:
            pass
        time.sleep(0.1)
    os.kill(os.getpid(), signal.SIGTERM)


threading.Thread(target=stop_once_ready, daemon=True).start()
code = main(["run", "--config", config_path])
loaded = sorted(name for name in unwanted if name in sys.modules)
print(json.dumps({"exit": code, "ready": bool(seen_ready), "loaded": loaded}))
"""


def test_an_agent_without_http_probes_never_loads_an_http_client_console_tables_or_plots(
    make_config: ConfigMaker, tmp_path: Path
) -> None:
    port = free_port()
    config = make_config(http={"listen": f"127.0.0.1:{port}"})
    assert not config.get("probes", {}).get("http")
    path = write_config(tmp_path / "agent.yaml", config)

    finished = subprocess.run(
        [sys.executable, "-c", RUN_UNTIL_READY, str(port), str(path), ",".join(NOT_FOR_THE_DAEMON)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        check=False,
    )
    SEEN_OUTPUT.extend((finished.stdout, finished.stderr))

    assert finished.returncode == 0, finished.stderr[-3000:]
    outcome = json.loads(finished.stdout.strip().splitlines()[-1])
    assert outcome == {"exit": 0, "ready": True, "loaded": []}, finished.stderr[-3000:]
