"""The availability rules of an edge agent, on plain state and plain (monotonic) times."""

from __future__ import annotations

import copy
import json

import pytest

from custom_components.farm_resilience.agent_availability import AgentAvailability
from custom_components.farm_resilience.agent_health import AgentHealth, parse_health

from .support import ACCEPTED, AGENT_ID

T0 = 1000.0
BEFORE_OFFLINE = "2026-11-26T04:00:00.000Z"
AFTER_OFFLINE = "2026-11-26T04:00:30.000Z"


def health(ts: str = BEFORE_OFFLINE) -> AgentHealth:
    """Return the healthy contract vector's health, published at `ts`."""
    payload = copy.deepcopy(ACCEPTED[0]["health"])
    payload["ts"] = ts
    return parse_health(json.dumps(payload), AGENT_ID)


@pytest.fixture
def agent() -> AgentAvailability:
    """An agent heard through a connected broker, nothing received yet."""
    availability = AgentAvailability(T0)
    availability.connection_changed(True, T0)
    return availability


def online(agent: AgentAvailability, now: float = T0) -> AgentAvailability:
    """Let the agent say `online` live and send its first live health."""
    agent.status_received("online", replayed=False, now=now)
    agent.health_received(health(), replayed=False, now=now)
    return agent


def test_an_agent_never_heard_of_is_unavailable_since_the_start_for_lack_of_status(
    agent: AgentAvailability,
) -> None:
    assert not agent.available
    assert agent.outage() == (T0, "no status")
    assert agent.state().health is None


def test_online_makes_it_available_offline_and_a_cleared_status_do_not(
    agent: AgentAvailability,
) -> None:
    agent.status_received("online", replayed=True, now=T0 + 1)
    assert agent.available
    assert agent.outage() is None

    agent.status_received("offline", replayed=False, now=T0 + 2)
    assert not agent.available
    assert agent.outage() == (T0 + 2, "offline")

    agent.status_received(None, replayed=False, now=T0 + 3)
    assert agent.outage() == (T0 + 2, "no status")


def test_without_the_broker_nothing_is_known_and_the_outage_says_unreachable(
    agent: AgentAvailability,
) -> None:
    online(agent)

    agent.connection_changed(False, T0 + 5)

    assert agent.online
    assert not agent.available
    assert agent.outage() == (T0 + 5, "unreachable (Home Assistant is not connected to the broker)")
    agent.connection_changed(True, T0 + 6)
    assert agent.available


def test_live_health_after_an_offline_makes_the_agent_online_replayed_health_does_not(
    agent: AgentAvailability,
) -> None:
    agent.status_received("offline", replayed=True, now=T0)

    agent.health_received(health(), replayed=True, now=T0 + 1)
    assert not agent.online

    agent.health_received(health(AFTER_OFFLINE), replayed=False, now=T0 + 2)
    assert agent.available
    assert agent.status == "offline"  # the status topic itself still says so


def test_replayed_health_without_any_status_shows_its_figures_but_not_available(
    agent: AgentAvailability,
) -> None:
    assert agent.health_received(health(), replayed=True, now=T0)

    assert agent.state().health == health()
    assert not agent.available


@pytest.mark.parametrize(
    ("replayed_ts", "confirmed"),
    [(BEFORE_OFFLINE, False), (AFTER_OFFLINE, True)],
    ids=["same_health_as_before_the_offline", "newer_health"],
)
def test_a_replayed_online_after_an_offline_counts_only_with_newer_health(
    agent: AgentAvailability, replayed_ts: str, confirmed: bool
) -> None:
    online(agent)
    agent.status_received("offline", replayed=False, now=T0 + 10)

    assert not agent.status_received("online", replayed=True, now=T0 + 20)
    assert agent.status == "online"
    assert not agent.available
    agent.health_received(health(replayed_ts), replayed=True, now=T0 + 20)

    assert agent.available is confirmed


def test_a_live_online_after_an_offline_counts_at_once(agent: AgentAvailability) -> None:
    online(agent)
    agent.status_received("offline", replayed=False, now=T0 + 10)

    assert agent.status_received("online", replayed=False, now=T0 + 20)

    assert agent.available


def test_a_replayed_health_older_than_the_one_shown_is_ignored(agent: AgentAvailability) -> None:
    agent.health_received(health(AFTER_OFFLINE), replayed=False, now=T0)

    assert not agent.health_received(health(BEFORE_OFFLINE), replayed=True, now=T0 + 1)

    assert agent.state().health == health(AFTER_OFFLINE)
    assert agent.health_received_at == T0


def test_the_probe_interval_is_learnt_from_the_largest_gap_between_live_health(
    agent: AgentAvailability,
) -> None:
    online(agent)
    assert agent.silent_after is None  # one arrival: no gap yet
    for at in (30.0, 75.0, 105.0):
        agent.health_received(health(), replayed=False, now=T0 + at)

    assert agent.silent_after == 3 * 45.0
    assert agent.silent_at == T0 + 105.0 + 135.0


def test_a_short_probe_interval_still_allows_a_minute_of_silence(
    agent: AgentAvailability,
) -> None:
    online(agent)

    agent.health_received(health(), replayed=False, now=T0 + 5)

    assert agent.silent_after == 60.0


def test_an_online_agent_without_health_past_silent_at_is_silent_until_its_next_health(
    agent: AgentAvailability,
) -> None:
    online(agent)
    agent.health_received(health(), replayed=False, now=T0 + 30)
    silent_at = T0 + 30 + 90

    assert not agent.silence_check(silent_at - 0.001)
    assert agent.available
    assert agent.silence_check(silent_at)

    assert agent.online
    assert not agent.available
    assert agent.outage() == (silent_at, "silent (online, but no health for 3 probe intervals)")
    assert agent.silent_at is None  # found silent once; the next live health counts anew
    agent.health_received(health(), replayed=False, now=silent_at + 10)
    assert agent.available


def test_going_offline_forgets_the_interval_and_ends_silence(agent: AgentAvailability) -> None:
    online(agent)
    agent.health_received(health(), replayed=False, now=T0 + 30)
    agent.silence_check(T0 + 120)

    agent.status_received("offline", replayed=False, now=T0 + 130)

    assert not agent.silent
    assert agent.silent_after is None
    assert agent.silent_at is None


def test_silence_counts_anew_from_a_reconnect_and_not_while_disconnected(
    agent: AgentAvailability,
) -> None:
    online(agent)
    agent.health_received(health(), replayed=False, now=T0 + 30)

    agent.connection_changed(False, T0 + 100)
    assert agent.silent_at is None
    agent.connection_changed(True, T0 + 200)

    assert agent.silent_at == T0 + 200 + 90
    assert not agent.silence_check(T0 + 289)


def test_unavailable_since_the_first_moment_whatever_the_reasons_that_follow(
    agent: AgentAvailability,
) -> None:
    online(agent)
    agent.status_received("offline", replayed=False, now=T0 + 10)
    agent.connection_changed(False, T0 + 20)
    agent.connection_changed(True, T0 + 30)

    assert agent.outage() == (T0 + 10, "offline")
    agent.status_received("online", replayed=False, now=T0 + 40)
    assert agent.down_since is None
