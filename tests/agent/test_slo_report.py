"""`farm-agent report`: one self-contained page whose figures are the history's, exactly."""

from __future__ import annotations

import json
import math
import re
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from farm_agent.commands.report import run_report
from farm_agent.config_file import parse_config
from farm_agent.health.history import History
from farm_agent.health.history_rows import Judgement, Outcome, RelayFigures
from farm_agent.histogram import bucket_of, bucket_value, quantile
from tests.agent.support import add_task_minute, set_up_task_figures
from tests.support.agent import farm_agent, with_secret, write_config

DAYS = 2
# Minutes before the last one: the pooler down, then the objective at risk.
POOLER_DOWN = range(1500, 1489, -1)
AT_RISK = range(1495, 1470, -1)


class Page(HTMLParser):
    """What the test reads of the page: fetchable references, tables, the JSON figures."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.references: list[str] = []
        self.tables: list[list[list[str]]] = []
        self.figures: dict[str, Any] = {}
        self.plots = 0
        self._cell: list[str] | None = None
        self._json: list[str] | None = None
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("src", "href", "xlink:href", "data") and not (value or "").startswith("#"):
                self.references.append(f"<{tag} {name}={value}>")
        if tag == "svg":
            self.plots += 1
        elif tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "script":
            kind = dict(attrs).get("type")
            assert kind == "application/json", f"a script that runs: {attrs}"
            self._json = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "script" and self._json is not None:
            self.figures = json.loads("".join(self._json))
            self._json = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)
        if self._json is not None:
            self._json.append(data)


def write_two_days(path: Path, last: int) -> None:
    """Two days and a bit of rounds, one a minute, with an outage and a burn in them."""
    history = History.open(path, 30)
    for minute in range(last - DAYS * 1440 - 30, last + 1):
        ago = last - minute
        pooler = (
            Outcome(0, 2)
            if ago in POOLER_DOWN
            else Outcome(2, 2, {bucket_of(0.004 + (minute % 7) / 1000): 2})
        )
        direct = Outcome(1 if minute % 97 == 0 else 2, 2, {bucket_of(0.002): 2})
        status = "at_risk" if ago in AT_RISK else "ok"
        history.record(
            minute,
            {"postgres/database_pooler": pooler, "postgres/database_direct": direct},
            RelayFigures(
                minute % 50, minute % 3, None if minute % 300 == 0 else 10.0 + minute % 13
            ),
            {"database_availability": Judgement(status, 99.95, 100 - (minute % 1000) / 10)},
        )
    history.close()


def store_figures(path: Path, start_s: int, end_s: int) -> dict[str, Any]:
    """The history's figures for the page's period, summed here from its minutes."""
    history = History.open_read_only(path)
    assert history is not None
    first, last = start_s // 60, end_s // 60 - 1
    hours = range(first // 60, last // 60 + 1)
    probes: dict[str, dict[int, Outcome]] = defaultdict(lambda: defaultdict(Outcome))
    for row in history.series_minutes(first, last):
        probes[row.series][row.minute // 60] += row.outcome
    relay: dict[int, list[RelayFigures]] = defaultdict(list)
    for minute, figures in history.relay_minutes(first, last):
        relay[minute // 60].append(figures)
    budgets: dict[int, float | None] = {}
    for minute, judged in history.judged_minutes(first, last):
        budgets[minute // 60] = judged["database_availability"].budget_remaining_pct
    history.close()

    def largest(values: list[Any]) -> Any:
        known = [value for value in values if value is not None]
        return max(known) if known else None

    return {
        "probes": {
            series: [
                (
                    (o := by_hour[hour]).good,
                    o.total,
                    _ms(quantile(o.latency, 0.95)),
                )
                for hour in hours
            ]
            for series, by_hour in probes.items()
        },
        "relay": [
            (
                largest([each.queue_depth for each in relay[hour]]),
                largest([each.relay_p95_ms for each in relay[hour]]),
            )
            for hour in hours
        ],
        "budgets": [budgets.get(hour) for hour in hours],
    }


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000


async def test_the_weekly_review_is_one_self_contained_page_whose_figures_equal_the_history(
    make_config: Callable[..., dict[str, Any]], figures_database: str, tmp_path: Path
) -> None:
    history_path = tmp_path / "history.db"
    config = make_config(
        pooler_dsn=None,
        direct_dsn=with_secret(figures_database),
        slo={"history_path": str(history_path), "objectives": None},
    )
    last = math.floor(time.time() / 60)
    write_two_days(history_path, last)
    await set_up_task_figures(figures_database)
    await add_task_minute(figures_database, 30, "report", dead_lettered=2, s1=40)
    await add_task_minute(figures_database, 26 * 60, "notify", s0_5=10)
    await add_task_minute(figures_database, 3 * 24 * 60, "report", s1=99)  # before the period
    path = write_config(tmp_path / "agent.yaml", config)
    out = tmp_path / "review.html"

    result = await farm_agent(
        "report", "--config", str(path), "--days", str(DAYS), "--out", str(out)
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{out}: {DAYS} days of {config['agent_id']}, 2 incidents\n"
    page = Page(out.read_text())
    assert page.references == [], "the page fetches nothing"
    assert not re.search(r"url\((?!#)", out.read_text())
    assert page.plots == 6
    figures = page.figures
    assert figures["end_s"] - figures["start_s"] == DAYS * 86400
    assert figures["end_s"] // 60 - 1 >= last
    stored = store_figures(history_path, figures["start_s"], figures["end_s"])
    shown_probes = {
        series: [(hour["good"], hour["total"], hour["p95_ms"]) for hour in hours]
        for series, hours in figures["probes"].items()
    }
    assert shown_probes == stored["probes"]
    assert [(hour["queue_depth"], hour["relay_p95_ms"]) for hour in figures["relay"]] == stored[
        "relay"
    ]
    shown_budgets = [
        hour["budget_remaining_pct"] for hour in figures["objectives"]["database_availability"]
    ]
    assert shown_budgets == stored["budgets"]
    assert [
        (incident["what"], incident["subject"], incident["minutes"])
        for incident in figures["incidents"]
    ] == [("route down", "pooler", 11), ("objective at risk", "database_availability", 25)]
    assert figures["incidents"][0]["start_s"] == (last - POOLER_DOWN[0]) * 60
    tasks = {
        name: (
            sum(hour["succeeded"] for hour in hours),
            sum(hour["dead_lettered"] for hour in hours),
        )
        for name, hours in figures["tasks"].items()
    }
    assert tasks == {"notify": (10, 0), "report": (40, 2)}
    assert max(hour["p95_s"] or 0 for hour in figures["tasks"]["report"]) == bucket_value(
        bucket_of(1)
    )
    # The tables a person reads say the same: the probes' rounds over the period.
    probes_table = next(table for table in page.tables if table[0][0] == "probe")
    rounds = {row[0]: int(row[1].replace(",", "")) for row in probes_table[1:]}
    assert rounds == {
        f"{series.split('/')[1]} (postgres)": sum(total for _, total, _ in hours)
        for series, hours in stored["probes"].items()
    }


def test_report_without_matplotlib_names_the_extra_to_install(
    make_config: Callable[..., dict[str, Any]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = parse_config(make_config(), tmp_path)
    monkeypatch.setitem(sys.modules, "matplotlib", None)

    code = run_report(config, 7, tmp_path / "review.html")

    assert code == 1
    assert "pip install 'farm-resilience-agent[report]'" in capsys.readouterr().err
    assert not (tmp_path / "review.html").exists()


def test_report_without_a_history_says_where_it_looked(
    make_config: Callable[..., dict[str, Any]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = parse_config(make_config(), tmp_path)

    code = run_report(config, 7, tmp_path / "review.html")

    assert code == 1
    assert f"no SLO history at {config.slo.history_path}" in capsys.readouterr().err
