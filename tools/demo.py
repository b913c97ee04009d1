"""`make demo`: a simulated farm, the agent and a real Home Assistant, with a live status line.

Ctrl-C, or `DEMO_SECONDS=N` (no terminal needed), prints a summary read from Home
Assistant's API and the agent, then stops everything; nothing is left running or on disk.
"""

from __future__ import annotations

import os
import signal
import sys
import time

from tools.demo_stack import AGENT_ID, DemoStack, Figures
from tools.home_assistant import HomeAssistantError
from tools.services import ServiceError

STATUS_EVERY_S = 5.0


def _value(value: float | None, unit: str = "", digits: int = 1) -> str:
    return "unknown" if value is None else f"{value:.{digits}f}{unit}"


def status_line(figures: Figures, elapsed: float) -> str:
    agent = "online" if figures.agent_online else "NOT ONLINE"
    return (
        f"[{elapsed:5.0f} s] commands {figures.commands or 0:4}"
        f" | success {_value(figures.success_rate, ' %')}"
        f" | p95 {_value(figures.latency_p95, ' s', 2)}"
        f" | degraded {'yes' if figures.degraded else 'no'}"
        f" | agent {agent}, route {figures.route}"
        f" | relayed {figures.relayed:6.0f} | spooled {figures.spooled:3.0f}"
    )


def summary(figures: Figures) -> str:
    problems = [*figures.reasons, *(f"agent {AGENT_ID}: {p}" for p in figures.agent_problems)]
    lines = [
        "Summary (Home Assistant's API, the agent's and the worker's /metrics)",
        f"  commands          {figures.commands or 0} measured by Farm Resilience,"
        f" {_value(figures.failed, digits=0)} failed"
        f" (the simulated devices ignored {figures.device_ignored}"
        f" of the {figures.device_commands} they received)",
        f"  success rate      {_value(figures.success_rate, ' %')}",
        f"  latency p50, p95  {_value(figures.latency_p50, ' s', 2)},"
        f" {_value(figures.latency_p95, ' s', 2)}",
        f"  readings relayed  {figures.relayed:.0f} of {figures.received:.0f} received"
        f" ({figures.dead_lettered:.0f} dead-lettered, {figures.spooled:.0f} still spooled;"
        f" Home Assistant's last health shows {_value(figures.relayed_in_ha, digits=0)})",
        f"  tasks             {figures.stored:.0f} readings stored by the worker,"
        f" {figures.notified:.0f} of {figures.frost_alerts} frost alerts published",
        f"  route             {figures.route}",
        f"  problems          {problems[0] if problems else 'none'}",
        *(f"                    {problem}" for problem in problems[1:]),
    ]
    return "\n".join(lines)


def watch(stack: DemoStack, seconds: float | None) -> None:
    """Print the status line until `seconds` pass or Ctrl-C; raise if the agent dies."""
    started = time.monotonic()
    try:
        while seconds is None or time.monotonic() - started < seconds:
            time.sleep(STATUS_EVERY_S)
            if not stack.agent_running():
                raise ServiceError("the agent exited")
            if not stack.worker_running():
                raise ServiceError("the task worker exited")
            print(status_line(stack.figures(), time.monotonic() - started), flush=True)
    except KeyboardInterrupt:
        print()


def main() -> int:
    seconds = float(os.environ.get("DEMO_SECONDS", "0")) or None
    # Ctrl-C and SIGTERM stop the demo, even where it was started with SIGINT ignored
    # (a background job of a script).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    started = time.monotonic()
    stack = DemoStack()
    figures: Figures | None = None
    try:
        stack.start()
        print(
            f"\nReady in {time.monotonic() - started:.0f} s.\n"
            f"  Home Assistant  {stack.dashboard_url}\n"
            f"  log in as       {stack.login.username} / {stack.login.password}\n"
            f"  agent metrics   http://127.0.0.1:{stack.agent_http}/metrics\n"
            f"  worker metrics  http://127.0.0.1:{stack.worker_http}/metrics\n"
            "The demo automations toggle the pumps and valves every 10 s; the devices answer"
            " in 0.2-2 s and ignore a few percent of commands.",
            flush=True,
        )
        print("Ctrl-C stops everything." if seconds is None else f"Running for {seconds:.0f} s.")
        watch(stack, seconds)
        figures = stack.figures()
        print(summary(figures), flush=True)
    except KeyboardInterrupt:
        print("\nInterrupted while starting.")
    except (HomeAssistantError, ServiceError, OSError) as err:
        print(f"\nThe demo failed: {err}\n{stack.logs()}", file=sys.stderr)
    finally:
        # A second Ctrl-C must not cut the clean-up short.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print(
            "Stopping Home Assistant, the farm, the worker, the agent and the services ...",
            flush=True,
        )
        stack.close()
    print(
        f"Everything stopped; agent exit code {stack.agent_exit_code},"
        f" worker exit code {stack.worker_exit_code}."
    )
    ok = figures is not None and (figures.commands or 0) > 0 and figures.relayed > 0
    return 0 if ok and stack.agent_exit_code == stack.worker_exit_code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
