"""The demo, as a person sees it: headless Chromium logs in to its Home Assistant.

The stack is the one `make demo` runs (tools.demo_stack). The browser logs in
through the login page, opens the Farm Resilience dashboard, waits until every
figure that a short run must know shows a real value, and takes a screenshot;
`FARM_UPDATE_SCREENSHOT=1` writes it to docs/dashboard.png, the one the README shows.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tools.demo_stack import DemoStack, Figures
from tools.services import free_port

try:
    from playwright.sync_api import Page, sync_playwright
except ImportError:  # reported by the test itself, with the fix
    sync_playwright = None  # type: ignore[assignment]

ROOT = Path(__file__).resolve().parents[2]
README_SCREENSHOT = ROOT / "docs" / "dashboard.png"
CHROMIUM = "/usr/bin/chromium"
# As root on a machine without a network: no sandbox, no background connections.
CHROMIUM_ARGS = [
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
NUMBER = r"-?\d+(?:\.\d+)?"
MIN_SAMPLES = 20  # the hub's default: fewer commands are not judged against the target
# Row of the dashboard -> what it must show after a short run.
MUST_SHOW = {
    "sensor.farm_resilience_command_success_rate": rf"^Success rate {NUMBER} ?%$",
    "sensor.farm_resilience_command_latency_p50": rf"^Latency p50 {NUMBER} s$",
    "sensor.farm_resilience_command_latency_p95": rf"^Latency p95 {NUMBER} s$",
    "sensor.farm_resilience_commands_failed": rf"^Failed commands {NUMBER}$",
    "sensor.farm_resilience_unavailable_devices": r"^Unavailable devices 0$",
    "sensor.farm_resilience_stale_sensors": r"^Stale sensors 0$",
    "binary_sensor.farm_resilience_degraded": r"^Degraded (OK|Problem)$",
    "binary_sensor.farm_east_connectivity": r"^Connectivity Connected$",
    "binary_sensor.farm_east_backend_problem": r"^Backend problem (OK|Problem)$",
    "sensor.farm_east_route": r"^Route Pooler$",
    "sensor.farm_east_pooler_latency": rf"^Pooler latency {NUMBER} ms$",
    "sensor.farm_east_direct_latency": rf"^Direct latency {NUMBER} ms$",
    "sensor.farm_east_relay_latency_p95": rf"^Relay latency p95 {NUMBER} ms$",
    "sensor.farm_east_relayed_readings": r"^Relayed readings [1-9]\d*$",
    "sensor.farm_east_queue_depth": r"^Queue depth \d+$",
    "sensor.farm_east_dead_letter_queue_depth": r"^Dead-letter queue depth 0$",
    "sensor.farm_east_spool_depth": r"^Spool depth \d+$",
    # A switch or valve row shows a toggle, and words only when it is unavailable.
    "switch.well_pump": r"^Well pump$",
    "switch.greenhouse_fan": r"^Greenhouse fan$",
    "valve.field_1_valve": r"^Field 1 valve$",
    "valve.main_valve": r"^Main irrigation valve$",
}
# Every entity row of the page, its entity id and its text, through the shadow roots.
ROWS_JS = """
() => {
  const skip = new Set(['STYLE', 'SCRIPT', 'TEMPLATE']);
  const text = (node) => {
    if (node.nodeType === Node.TEXT_NODE) return node.data;
    if (skip.has(node.nodeName)) return '';
    let found = node.shadowRoot ? text(node.shadowRoot) : '';
    for (const child of node.childNodes) found += text(child);
    return found;
  };
  const rows = {};
  const walk = (root) => {
    for (const element of root.querySelectorAll('*')) {
      if (element.localName === 'hui-generic-entity-row' && element.config) {
        rows[element.config.entity] = text(element).replace(/\\s+/g, ' ').trim();
      }
      if (element.shadowRoot) walk(element.shadowRoot);
    }
  };
  walk(document);
  return rows;
}
"""


@pytest.fixture
def demo() -> Iterator[DemoStack]:
    """The `make demo` stack on a free port, stopped whatever happens."""
    stack = DemoStack(port=free_port(), progress=lambda _: None)
    try:
        stack.start()
        yield stack
    except BaseException:
        print(stack.logs())
        raise
    finally:
        stack.close()


def _wrong_rows(rows: dict[str, str]) -> dict[str, str]:
    return {
        entity_id: rows.get(entity_id, "<no row>")
        for entity_id, pattern in MUST_SHOW.items()
        if not re.match(pattern, rows.get(entity_id, ""))
    }


def _log_in(page: Page, demo: DemoStack) -> None:
    page.goto(demo.dashboard_url)
    page.get_by_role("textbox", name="Username").fill(demo.login.username)
    page.get_by_role("textbox", name="Password").fill(demo.login.password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{demo.dashboard_url}*")


def _rows_when_known(page: Page, demo: DemoStack, timeout_s: float = 90) -> dict[str, str]:
    """The rows once every figure shows a real value; Home Assistant pushes each change.

    Also waits for `min_samples` (20) commands, so that the hub has judged the success rate.
    """
    deadline = time.monotonic() + timeout_s
    rows: dict[str, str] = page.evaluate(ROWS_JS)
    while time.monotonic() < deadline and (
        _wrong_rows(rows) or (demo.figures().commands or 0) < MIN_SAMPLES
    ):
        page.wait_for_timeout(1000)
        rows = page.evaluate(ROWS_JS)
    return rows


@pytest.mark.timeout(300)
def test_dashboard_shows_true_figures_after_login(demo: DemoStack, tmp_path: Path) -> None:
    update_readme = os.environ.get("FARM_UPDATE_SCREENSHOT") == "1"
    screenshot = README_SCREENSHOT if update_readme else tmp_path / "dashboard.png"
    if sync_playwright is None:
        pytest.fail("playwright is not installed: `make venv` installs it (the `ha` extra)")
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} not found: `make` installs Debian's chromium as root")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            _log_in(page, demo)
            rows = _rows_when_known(page, demo)
            # Settle the gauges' animation, then the picture for the README.
            page.wait_for_timeout(1500)
            page.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()
    assert not _wrong_rows(rows), f"figures not rendered as expected: {_wrong_rows(rows)}"
    figures = _when_a_frost_alert_was_shown(demo)
    assert (figures.commands or 0) >= MIN_SAMPLES
    assert figures.relayed > 0
    # The task worker stores the relayed readings and publishes the farm's notifications,
    # which Home Assistant's frost automation turned into a notification.
    assert figures.stored > 0
    assert figures.notified >= 1
    assert figures.frost_shown_at is not None
    # The hub's failures are the commands the simulated devices ignored, less those ignored
    # within the last command timeout (5 s), which are not judged yet.
    assert 0 <= figures.device_ignored - (figures.failed or 0) <= 3
    shown = re.search(NUMBER, rows["sensor.farm_resilience_command_success_rate"])
    assert shown is not None
    assert 50 < float(shown.group()) <= 100
    assert screenshot.read_bytes().startswith(b"\x89PNG")
    assert screenshot.stat().st_size > 20_000


def _when_a_frost_alert_was_shown(demo: DemoStack, timeout_s: float = 60) -> Figures:
    """The figures once Home Assistant showed a frost alert (one comes every 20 s)."""
    deadline = time.monotonic() + timeout_s
    figures = demo.figures()
    while figures.frost_shown_at is None and time.monotonic() < deadline:
        time.sleep(1)
        figures = demo.figures()
    return figures


def test_make_demo_with_demo_seconds_prints_a_summary_and_leaves_nothing() -> None:
    """`DEMO_SECONDS=N make demo`: no terminal, a summary, then nothing left behind."""
    # The demo's own temporary folders go here; PostgreSQL (another user) must traverse it.
    scratch = Path(tempfile.mkdtemp(prefix="farm-demo-test-"))
    scratch.chmod(0o755)
    try:
        result = subprocess.run(
            [sys.executable, "-m", "tools.demo"],
            cwd=ROOT,
            env={**os.environ, "DEMO_SECONDS": "10", "TMPDIR": str(scratch)},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert re.search(r"log in as +farmer / \S+", result.stdout)
        summary = result.stdout.split("Summary", 1)[1]
        for label in ("commands", "success rate", "latency p50, p95", "readings relayed"):
            assert label in summary
        assert re.search(r"route +pooler", summary)
        assert re.search(r"tasks +\d+ readings stored by the worker", summary)
        assert "Everything stopped; agent exit code 0, worker exit code 0." in result.stdout
        assert list(scratch.iterdir()) == []
        assert not _processes_using(scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _processes_using(folder: Path) -> list[str]:
    """Command lines of running processes that name `folder`."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            words = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(folder) in words:
            found.append(words)
    return found
