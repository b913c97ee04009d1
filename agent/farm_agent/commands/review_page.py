"""The weekly review as one HTML page: tables, plots as inline SVG, the figures as JSON.

Self-contained: no script, style sheet, font or image is fetched from anywhere; the
plots (matplotlib, the `report` extra) are SVG inside the page. Every figure plotted
is in the `<script type="application/json" id="figures">` block, for machines.
Times are UTC.
"""

from __future__ import annotations

import html
import io
import json
import math
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from farm_agent.health.review import Review

# A fixed salt: the same figures give the same page.
_RC: dict[Any, Any] = {"svg.fonttype": "none", "svg.hashsalt": "farm-resilience", "font.size": 9}
_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.15em; margin-top: 2em; }
table { border-collapse: collapse; margin: 0.5em 0; }
th, td { border-bottom: 1px solid #ddd; padding: 0.25em 0.8em; text-align: left; }
td.number { text-align: right; font-variant-numeric: tabular-nums; }
.ok { color: #1a7f37; } .at_risk { color: #9a6700; } .breached { color: #cf222e; }
.unknown { color: #777; } .note { color: #555; font-style: italic; }
svg { max-width: 100%; height: auto; }
"""


def render_page(review: Review, targets: dict[str, float]) -> str:
    """The page; `targets` are the objectives' target percentages, by name."""
    period = f"{_when(review.start_s)} to {_when(review.end_s)} UTC"
    days = round((review.end_s - review.start_s) / 86400)
    parts = [
        f"<h1>Weekly review of {_text(review.agent_id)}</h1>",
        f"<p>{period} ({days} days), farm-agent {_text(review.version)}</p>",
        "<h2>Service level objectives</h2>",
        _objectives_table(review, targets),
        "<h2>Incidents</h2>",
        _incidents_table(review),
        "<h2>Availability and latency per probe</h2>",
        _probes_table(review),
        _availability_plot(review),
        _latency_plot(review),
        "<h2>Error budgets</h2>",
        _budget_plot(review),
        "<h2>Relay</h2>",
        _relay_plot(review),
        "<h2>Tasks by type</h2>",
        _tasks_section(review),
        '<script type="application/json" id="figures">',
        json.dumps(review.as_json()).replace("</", "<\\/"),
        "</script>",
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>Farm Resilience weekly review: {_text(review.agent_id)}</title>"
        f"<style>{_STYLE}</style></head><body>\n" + "\n".join(parts) + "\n</body></html>\n"
    )


# Tables -----------------------------------------------------------------------------


def _objectives_table(review: Review, targets: dict[str, float]) -> str:
    if not review.objectives:
        return '<p class="note">No objective was judged in this period.</p>'
    rows = []
    for name, hours in review.objectives.items():
        judged = [hour for hour in hours if hour["status"] is not None]
        last: dict[str, Any] = judged[-1] if judged else {"status": "unknown"}
        worst = min((hour["status"] for hour in judged), key=_rank, default="unknown")
        rows.append(
            [
                _cell(name),
                _number(targets.get(name), " %"),
                _number(last.get("sli_pct"), " %"),
                _number(last.get("budget_remaining_pct"), " %"),
                _status(last["status"]),
                _status(worst),
            ]
        )
    return _table(("objective", "target", "SLI", "budget left", "now", "worst"), rows)


def _incidents_table(review: Review) -> str:
    if not review.incidents:
        return '<p class="note">None: no objective at risk, no route down.</p>'
    rows = [
        [
            _cell(incident.what),
            _cell(incident.subject),
            _cell(_when(incident.start_s)),
            _cell(_when(incident.end_s)),
            _number((incident.end_s - incident.start_s) // 60, " min"),
        ]
        for incident in review.incidents
    ]
    return _table(("what", "of", "from", "to", "for"), rows)


def _probes_table(review: Review) -> str:
    rows = [
        [
            _cell(_series_label(series)),
            _count(figures["total"]),
            _count(figures["good"]),
            _number(figures["availability_pct"], " %", 3),
            _number(figures["p50_ms"], " ms"),
            _number(figures["p95_ms"], " ms"),
        ]
        for series, figures in review.probe_totals.items()
    ]
    if not rows:
        return '<p class="note">The history holds no probe round in this period.</p>'
    return _table(("probe", "rounds", "passed", "availability", "p50", "p95"), rows)


def _tasks_section(review: Review) -> str:
    if not review.tasks:
        note = review.tasks_note or "No task was settled in this period."
        return f'<p class="note">{_text(note)}</p>'
    return _tasks_plot(review)


def _table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    head = "".join(f"<th>{_text(cell)}</th>" for cell in header)
    body = "".join(f"<tr>{''.join(row)}</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


# Plots ------------------------------------------------------------------------------


def _availability_plot(review: Review) -> str:
    def draw(axes: Any) -> None:
        for series, hours in review.probes.items():
            axes.plot(
                _times(review), _values(hours, "availability_pct"), label=_series_label(series)
            )
        for incident in review.incidents:
            if incident.what == "route down":
                axes.axvspan(
                    _time(incident.start_s), _time(incident.end_s), color="#cf222e", alpha=0.15
                )
        axes.set_ylabel("rounds passed, % per hour")

    return _plot("Availability per probe (shaded: a route down)", draw, bool(review.probes))


def _latency_plot(review: Review) -> str:
    from matplotlib.ticker import FuncFormatter, NullFormatter  # noqa: PLC0415 - the extra

    def draw(axes: Any) -> None:
        for series, hours in review.probes.items():
            axes.plot(_times(review), _values(hours, "p95_ms"), label=_series_label(series))
        axes.set_yscale("log")
        # Plain numbers: the log axis's own labels are mathtext, seconds to lay out.
        axes.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        axes.yaxis.set_minor_formatter(NullFormatter())
        axes.set_ylabel("p95 latency, ms")

    return _plot("Latency per probe (p95 of each hour)", draw, bool(review.probes))


def _budget_plot(review: Review) -> str:
    def draw(axes: Any) -> None:
        for name, hours in review.objectives.items():
            axes.plot(_times(review), _values(hours, "budget_remaining_pct"), label=name)
        axes.axhline(0, color="#cf222e", linewidth=0.8)
        axes.set_ylabel("error budget left, %")

    return _plot("Error budget left at the end of each hour", draw, bool(review.objectives))


def _relay_plot(review: Review) -> str:
    def draw(axes: Any) -> None:
        axes.plot(_times(review), _values(review.relay, "queue_depth"), label="queue depth")
        axes.plot(_times(review), _values(review.relay, "spool_depth"), label="spool depth")
        axes.set_ylabel("messages (largest each hour)")
        latency = axes.twinx()
        latency.plot(
            _times(review),
            _values(review.relay, "relay_p95_ms"),
            color="#8250df",
            label="relay p95",
        )
        latency.set_ylabel("relay p95, ms (largest each hour)", color="#8250df")

    known = any(value is not None for hour in review.relay for value in hour.values())
    return _plot("Queue depth, spool depth and relay latency", draw, known)


def _tasks_plot(review: Review) -> str:
    def draw(axes: Any) -> None:
        for name, hours in review.tasks.items():
            line = axes.plot(_times(review), _values(hours, "succeeded"), label=f"{name} succeeded")
            axes.plot(
                _times(review),
                _values(hours, "dead_lettered"),
                linestyle="--",
                color=line[0].get_color(),
                label=f"{name} dead-lettered",
            )
        axes.set_ylabel("tasks per hour")

    def draw_p95(axes: Any) -> None:
        for name, hours in review.tasks.items():
            axes.plot(_times(review), _values(hours, "p95_s"), label=name)
        axes.set_ylabel("p95 submit to done, s")

    return _plot("Tasks settled by type", draw, True) + _plot(
        "Task latency by type", draw_p95, True
    )


def _plot(title: str, draw: Any, anything: bool) -> str:
    """One plot as inline SVG, or a note when there is nothing to draw."""
    if not anything:
        return f'<p class="note">{_text(title)}: no figures in this period.</p>'
    import matplotlib as mpl  # noqa: PLC0415 - the `report` extra, needed here only
    from matplotlib.dates import DateFormatter  # noqa: PLC0415
    from matplotlib.figure import Figure  # noqa: PLC0415

    with mpl.rc_context(_RC):
        figure = Figure(figsize=(10, 3.2), layout="constrained")
        axes = figure.add_subplot()
        draw(axes)
        axes.set_title(title, loc="left")
        axes.grid(alpha=0.3)
        dates = DateFormatter("%a %d %b\n%H:%M", tz=UTC)  # type: ignore[no-untyped-call]
        axes.xaxis.set_major_formatter(dates)
        if axes.get_legend_handles_labels()[0]:
            axes.legend(fontsize=8, loc="best")
        out = io.StringIO()
        figure.savefig(out, format="svg")
    text = out.getvalue()
    # The element alone: no XML prolog, no DOCTYPE naming a DTD's address.
    return text[text.index("<svg") :]


# Words and numbers --------------------------------------------------------------------


def _times(review: Review) -> list[datetime]:
    return [_time(hour) for hour in review.hours]


def _time(epoch_s: float) -> datetime:
    return datetime.fromtimestamp(epoch_s, UTC)


def _values(rows: Sequence[dict[str, Any]], key: str) -> list[float]:
    return [math.nan if row[key] is None else float(row[key]) for row in rows]


def _when(epoch_s: float) -> str:
    return _time(epoch_s).strftime("%a %d %b %Y %H:%M")


def _series_label(series: str) -> str:
    kind, _, name = series.partition("/")
    return "any database route" if series == "route/any" else f"{name} ({kind})"


def _rank(status: str) -> int:
    order = ("breached", "at_risk", "ok", "unknown")
    return order.index(status) if status in order else len(order)


def _status(status: str) -> str:
    return f'<td class="{_text(status)}">{_text(status.replace("_", " "))}</td>'


def _number(value: float | None, unit: str, digits: int = 2) -> str:
    shown = "-" if value is None else f"{round(value, digits):g}{unit}"
    return f'<td class="number">{_text(shown)}</td>'


def _cell(value: str) -> str:
    return f"<td>{_text(value)}</td>"


def _count(value: int) -> str:
    return f'<td class="number">{value:,}</td>'


def _text(value: str) -> str:
    return html.escape(value, quote=True)
