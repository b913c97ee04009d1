"""`make demo`: throwaway services, the agent and a simulated farm, with a live status line.

Ctrl-C, or `DEMO_SECONDS=N` (no terminal needed), stops everything and prints a summary.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import asyncpg
import yaml

from tools.farm_simulator import FarmSimulator, farm_sensors
from tools.services import Services, free_port

STATUS_EVERY_S = 3.0
SENSORS = 20


def metric(page: str, name: str, labels: str = "") -> float:
    wanted = f"{name}{{{labels}}}" if labels else name
    for line in page.splitlines():
        if line.startswith(wanted + " "):
            return float(line.split()[-1])
    return 0.0


def read_metrics(port: int) -> str:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
            return str(response.read().decode())
    except OSError:
        return ""


def route_of(page: str) -> str:
    for route in ("pooler", "direct"):
        if metric(page, "farm_agent_backend_route", f'route="{route}"') == 1:
            return route
    return "none"


async def queue_depth(dsn: str, queue: str) -> int:
    connection = await asyncpg.connect(dsn)
    try:
        return int(await connection.fetchval("SELECT count(*) FROM pgmq.q_" + queue))
    except asyncpg.UndefinedTableError:
        return 0
    finally:
        await connection.close()


def write_agent_config(folder: Path, services: Services, mqtt_port: int, http: int) -> Path:
    config = {
        "agent_id": "demo-farm",
        "mqtt": {"host": "127.0.0.1", "port": mqtt_port, "topics": ["farm/#"]},
        "backend": {"pooler_dsn": services.pgbouncer.dsn, "direct_dsn": services.postgres.dsn},
        "spool": {"path": str(folder / "spool.db")},
        "probes": {"interval_s": 5},
        "http": {"listen": f"127.0.0.1:{http}"},
    }
    path = folder / "agent.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def status_line(page: str, queued: int, elapsed: float) -> str:
    return (
        f"[{elapsed:6.0f} s] received {metric(page, 'farm_agent_readings_received_total'):7.0f}"
        f" | relayed {metric(page, 'farm_agent_readings_relayed_total'):7.0f}"
        f" | spooled {metric(page, 'farm_agent_spool_depth'):5.0f}"
        f" | dead-lettered {metric(page, 'farm_agent_readings_dead_lettered_total'):3.0f}"
        f" | route {route_of(page):6} | in queue {queued}"
    )


def start_agent(folder: Path, config: Path) -> subprocess.Popen[bytes]:
    with (folder / "agent.log").open("wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "farm_agent", "run", "--config", str(config)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def watch(
    agent: subprocess.Popen[bytes],
    dsn: str,
    http: int,
    seconds: float | None,
    stop: threading.Event,
) -> bool:
    """Print the status line until stopped; False if the agent died."""
    started = time.monotonic()
    while not stop.wait(STATUS_EVERY_S):
        elapsed = time.monotonic() - started
        queued = asyncio.run(queue_depth(dsn, "sensor_readings"))
        print(status_line(read_metrics(http), queued, elapsed), flush=True)
        if agent.poll() is not None:
            return False
        if seconds is not None and elapsed >= seconds:
            break
    return True


def main() -> int:
    seconds = float(os.environ.get("DEMO_SECONDS", "0")) or None
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print("Starting throwaway PostgreSQL+PGMQ, PgBouncer and Mosquitto ...", flush=True)
    services = Services()
    folder = Path(tempfile.mkdtemp(prefix="farm-demo-"))
    agent: subprocess.Popen[bytes] | None = None
    simulator: FarmSimulator | None = None
    try:
        broker = services.mosquitto()
        http = free_port()
        agent = start_agent(folder, write_agent_config(folder, services, broker.port, http))
        simulator = FarmSimulator("127.0.0.1", broker.port, farm_sensors(SENSORS))
        simulator.start()
        print(f"Agent running: metrics http://127.0.0.1:{http}/metrics, log {folder}/agent.log")
        print(f"Farm simulator: {SENSORS} sensors, one reading per second each")
        print("Ctrl-C stops everything." if seconds is None else f"Running for {seconds:.0f} s.")
        dsn = services.postgres.dsn
        if not watch(agent, dsn, http, seconds, stop):
            print(f"agent exited with {agent.returncode}; its log:")
            print((folder / "agent.log").read_text()[-3000:])
            return 1
        simulator.stop()
        simulator = None
        time.sleep(1)
        page = read_metrics(http)
        queued = asyncio.run(queue_depth(dsn, "sensor_readings"))
        agent.send_signal(signal.SIGTERM)
        exit_code = agent.wait(15)
        print("\nSummary")
        print(status_line(page, queued, 0).split("] ", 1)[1])
        print(f"agent stopped with exit code {exit_code}")
        return 0 if exit_code == 0 and queued > 0 else 1
    finally:
        if simulator is not None:
            simulator.stop()
        if agent is not None and agent.poll() is None:
            agent.kill()
            agent.wait()
        services.close()
        with contextlib.suppress(OSError):
            for path in folder.iterdir():
                path.unlink()
            folder.rmdir()


if __name__ == "__main__":
    sys.exit(main())
