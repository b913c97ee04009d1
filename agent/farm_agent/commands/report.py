"""`farm-agent report`: the weekly review, one self-contained HTML page written to a file."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

from farm_agent.config import AgentConfig
from farm_agent.health.history import History, HistoryError
from farm_agent.health.review import gather_review

EXIT_OK = 0
EXIT_FAILURE = 1
MISSING_EXTRA = (
    "farm-agent report draws its plots with matplotlib, which is not installed:"
    " pip install 'farm-resilience-agent[report]'"
)


def run_report(config: AgentConfig, days: int, out: Path) -> int:
    """Write the review of the last `days` days to `out`; 1 with a reason when it cannot."""
    if not _plotting_installed():
        return _fail(MISSING_EXTRA)
    path = config.slo.history_path
    try:
        history = History.open_read_only(path)
    except HistoryError as err:
        return _fail(str(err))
    if history is None:
        return _fail(
            f"no SLO history at {path}: the agent keeps it while it runs (slo.history_path)"
        )
    try:
        review = asyncio.run(gather_review(config, history, days, time.time()))
    finally:
        history.close()
    from farm_agent.commands.review_page import render_page  # noqa: PLC0415 - needs matplotlib

    targets = {objective.name: objective.target_pct for objective in config.slo.objectives}
    page = render_page(review, targets)
    written = out.with_name(f".{out.name}.partial")
    try:
        written.write_text(page, encoding="utf-8")
        written.replace(out)
    except OSError as err:
        return _fail(f"cannot write {out} ({err.strerror})")
    print(f"{out}: {days} days of {config.agent_id}, {len(review.incidents)} incidents")
    return EXIT_OK


def _plotting_installed() -> bool:
    try:
        import matplotlib  # noqa: F401, PLC0415
    except ImportError:
        return False
    return True


def _fail(reason: str) -> int:
    print(f"farm-agent: {reason}", file=sys.stderr)
    return EXIT_FAILURE
