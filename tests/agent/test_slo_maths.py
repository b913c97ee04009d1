"""The objectives' maths, exactly as the SRE workbook states it: SLI, budget, burn rates, alerts."""

from __future__ import annotations

from fractions import Fraction

import pytest

from farm_agent.config import ObjectiveConfig
from farm_agent.health.slo import (
    MIN_SHORT_WINDOW_EVENTS,
    Events,
    ObjectiveEvents,
    SloStatus,
    judge,
)

DATABASE = ObjectiveConfig("database_availability", 99.9)


def events(
    window: tuple[int, int],
    m5: tuple[int, int] = (0, 0),
    m30: tuple[int, int] = (0, 0),
    h1: tuple[int, int] = (0, 0),
    h6: tuple[int, int] = (0, 0),
) -> ObjectiveEvents:
    """Events given as (bad, total) per window, as an operator counts failures."""

    def of(bad_total: tuple[int, int]) -> Events:
        bad, total = bad_total
        return Events(total - bad, total)

    return ObjectiveEvents({"5m": of(m5), "30m": of(m30), "1h": of(h1), "6h": of(h6)}, of(window))


def test_sli_budget_and_burn_rates_follow_the_workbook_formulas() -> None:
    report = judge(
        DATABASE,
        events(window=(40, 100_000), m5=(0, 10), m30=(1, 60), h1=(3, 120), h6=(9, 720)),
    )

    assert report.sli == Fraction(99_960, 100_000)
    # 100 bad events were allowed (0.1 % of 100,000), 40 went bad: 60 % of the budget left.
    assert report.budget_remaining == Fraction(3, 5)
    assert report.burn_rates == {
        "5m": 0,
        "30m": Fraction(1, 60) * 1000,
        "1h": Fraction(3, 120) * 1000,
        "6h": Fraction(9, 720) * 1000,
    }
    assert report.as_json() == {
        "name": "database_availability",
        "target_pct": 99.9,
        "sli_pct": 99.96,
        "budget_remaining_pct": 60.0,
        "burn_rate_1h": 25.0,
        "burn_rate_6h": 12.5,
        "status": "at_risk",
        "burn_rate_5m": 0.0,
        "burn_rate_30m": 16.67,
        "good": 99_960,
        "total": 100_000,
    }
    assert report.alert == "slow"


@pytest.mark.parametrize(
    ("h1", "m5", "status"),
    [
        ((2, 100), (2, 10), SloStatus.AT_RISK),  # 20x over 1 h, 200x over 5 min
        ((2, 100), (0, 10), SloStatus.OK),  # the burn has stopped: the 5 min window says so
        ((1, 100), (1, 10), SloStatus.OK),  # 10x over 1 h is not a fast burn
        ((1, 60), (1, 10), SloStatus.OK),  # 16.7x over 1 h, 100x over 5 min, but one bad is luck
    ],
)
def test_the_fast_alert_needs_both_1h_and_5min_above_14_4(
    h1: tuple[int, int], m5: tuple[int, int], status: SloStatus
) -> None:
    report = judge(DATABASE, events(window=(3, 100_000), m5=m5, m30=m5, h1=h1, h6=h1))

    expected_alert = "fast" if status == SloStatus.AT_RISK else None
    assert (report.status, report.alert) == (status, expected_alert)


def test_the_slow_alert_needs_both_6h_and_30min_above_6() -> None:
    # 7x over 6 h and over 30 min: slow burn; the 1 h window alone (7x) is no fast burn.
    burning = events(window=(10, 100_000), m5=(0, 10), m30=(1, 140), h1=(2, 280), h6=(10, 1428))
    cooled = events(window=(10, 100_000), m5=(0, 10), m30=(0, 140), h1=(2, 280), h6=(10, 1428))

    assert judge(DATABASE, burning).status == SloStatus.AT_RISK
    assert judge(DATABASE, burning).alert == "slow"
    assert judge(DATABASE, cooled).status == SloStatus.OK


def test_a_burn_rate_exactly_at_the_threshold_does_not_fire() -> None:
    # 6.0x over both slow windows: an alert fires only above it.
    at_threshold = events(
        window=(12, 100_000), m5=(0, 10), m30=(3, 500), h1=(3, 500), h6=(12, 2000)
    )

    report = judge(DATABASE, at_threshold)

    assert report.burn_rates["6h"] == 6
    assert report.status == SloStatus.OK


def test_a_short_window_with_too_few_events_is_no_evidence() -> None:
    few = MIN_SHORT_WINDOW_EVENTS - 1
    # Every one of them bad: 1000x, yet a rate from 4 events is not a measurement.
    report = judge(DATABASE, events(window=(5, 100_000), m5=(few, few), h1=(5, 60)))

    assert report.burn_rates["5m"] == 1000
    assert report.status == SloStatus.OK
    enough = MIN_SHORT_WINDOW_EVENTS
    assert judge(DATABASE, events((5, 100_000), m5=(2, enough), h1=(5, 60))).status == (
        SloStatus.AT_RISK
    )


def test_the_budget_spent_exactly_is_breached_and_breached_wins_over_at_risk() -> None:
    spent = judge(DATABASE, events(window=(100, 100_000), m5=(5, 10), h1=(20, 120)))
    almost = judge(DATABASE, events(window=(99, 100_000)))

    assert spent.budget_remaining == 0
    assert spent.status == SloStatus.BREACHED
    assert almost.status == SloStatus.OK
    assert almost.budget_remaining == Fraction(1, 100)


def test_a_window_too_small_to_allow_one_bad_event_has_no_budget_and_cannot_be_breached() -> None:
    # 999 rounds for a 99.9 % objective: the budget allows 0.999 of a bad one.
    few = judge(DATABASE, events(window=(1, 999), m5=(0, 10), h1=(1, 120)))
    enough = judge(DATABASE, events(window=(1, 1000), m5=(0, 10), h1=(1, 120)))

    assert few.sli == Fraction(998, 999)
    assert few.budget_remaining is None
    assert few.as_json()["budget_remaining_pct"] is None
    assert few.status == SloStatus.OK
    assert enough.budget_remaining == 0
    assert enough.status == SloStatus.BREACHED


def test_an_overspent_budget_is_negative() -> None:
    report = judge(ObjectiveConfig("error_rate", 99.0), events(window=(300, 10_000)))

    assert report.budget_remaining == Fraction(-2)
    assert report.as_json()["budget_remaining_pct"] == -200.0
    assert report.status == SloStatus.BREACHED


def test_no_events_is_unknown_never_a_made_up_figure() -> None:
    report = judge(DATABASE, events(window=(0, 0)))

    assert report.status == SloStatus.UNKNOWN
    figures = report.as_json()
    assert [figures[key] for key in ("sli_pct", "budget_remaining_pct", "burn_rate_1h")] == [
        None,
        None,
        None,
    ]
    assert report.problem(30) is None


def test_problems_name_the_objective_the_figures_and_the_threshold() -> None:
    at_risk = judge(DATABASE, events(window=(4, 83_544), m5=(4, 10), h1=(4, 24), h6=(4, 24)))
    breached = judge(ObjectiveConfig("api_availability", 99.9), events(window=(30, 10_000)))

    assert at_risk.problem(30) == (
        "SLO database_availability at risk: error budget burning 166.7x over 1 h and 400.0x over"
        " 5 min (alert above 14.4x), 95.2 % of the budget left"
    )
    assert breached.problem(30) == (
        "SLO api_availability breached: 99.7 % < 99.9 % over 30 days, error budget spent"
    )
