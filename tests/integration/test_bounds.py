"""Lists of texts shown in attributes and events: at most 20, each at most 200 characters."""

from __future__ import annotations

import json

from custom_components.farm_resilience.agent_health import parse_health
from custom_components.farm_resilience.bounds import MAX_CHARS, MAX_TEXTS, Texts, bounded

from .support import ACCEPTED


def test_a_short_list_is_shown_whole() -> None:
    texts = [f"problem {n}" for n in range(MAX_TEXTS)]

    assert bounded([Texts.from_list(texts)]) == texts


def test_a_long_list_shows_the_first_texts_and_how_many_more() -> None:
    first = Texts.from_list([f"a{n}" for n in range(15)])
    second = Texts.of((f"b{n}" for n in range(1_000_000)), 1_000_000)

    shown = bounded([first, second])

    assert shown == [*(f"a{n}" for n in range(15)), "b0", "b1", "b2", "b3", "and 999996 more"]


def test_a_long_text_is_cut_with_an_ellipsis() -> None:
    (shown,) = bounded([Texts.from_list(["x" * 5000])])

    assert len(shown) == MAX_CHARS
    assert shown.endswith("…")


def test_an_agent_s_problems_are_bounded_when_read() -> None:
    health = dict(ACCEPTED[1]["health"])
    health["problems"] = ["y" * 300] * 25

    read = parse_health(json.dumps(health), health["agent_id"])

    assert read.problems == (*(["y" * (MAX_CHARS - 1) + "…"] * 19), "and 6 more")
    assert read.payload["problems"] == list(read.problems)
