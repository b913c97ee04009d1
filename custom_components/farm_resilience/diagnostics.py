"""Diagnostics: the hub's figures and health, or an agent's status and last health payload."""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import Any

from homeassistant.components.diagnostics import async_redact_data
from homeassistant.core import HomeAssistant

from .agent_link import AgentLink
from .entries import FarmResilienceConfigEntry, is_agent_entry
from .hub import FarmResilienceHub
from .rhythm import silence_limit

# Nothing secret is expected; an agent's health could name an endpoint or a DSN by mistake.
TO_REDACT = {"password", "username", "token", "api_key", "dsn", "pooler_dsn", "direct_dsn", "url"}


async def async_get_config_entry_diagnostics(
    hass: HomeAssistant, entry: FarmResilienceConfigEntry
) -> dict[str, Any]:
    """Return what a maintainer needs to judge the figures."""
    if is_agent_entry(entry):
        return _agent_diagnostics(entry.runtime_data, time.monotonic())
    return _hub_diagnostics(entry.runtime_data, dict(entry.options))


def _hub_diagnostics(hub: FarmResilienceHub, options: dict[str, Any]) -> dict[str, Any]:
    """Return the hub's options, window, offenders, pending commands and health."""
    snapshot = hub.data
    monotonic = time.monotonic()  # command ages, deadlines and outages run on it
    return {
        "options": async_redact_data(options, TO_REDACT),
        "window": asdict(snapshot.figures),
        "worst_offenders": [
            {**asdict(offender), "success_rate": round(offender.success_rate, 2)}
            for offender in snapshot.worst_offenders
        ],
        "pending_commands": [
            {
                "entity_id": command.entity_id,
                "action": f"{command.domain}.{command.service}",
                "expectation": command.expectation.describe(),
                "age_s": round(monotonic - command.started, 3),
                "remaining_s": round(command.deadline - monotonic, 3),
            }
            for command in hub.tracker.pending.values()
        ],
        "followed_entities": len(hub.tracker.followed),
        "down_devices": {
            name: round(monotonic - since, 3) for name, since in hub.outages.down_devices().items()
        },
        "outages": snapshot.outages,
        "flaps": snapshot.flaps,
        "stale_sensors": snapshot.stale_sensors,
        "sensor_rhythms": _rhythms(hub),
        "slo": {
            "budget_remaining_pct": snapshot.slo.budget_remaining_pct,
            "allowed_failures": snapshot.slo.allowed_failures,
            "below_target": snapshot.slo.below_target,
            "burn_rates": snapshot.slo.burn_rates,
            "burn_alerts": [fired.alert.name for fired in snapshot.slo.alerts],
        },
        "uptime": asdict(snapshot.uptime),
        "broker": None if snapshot.broker is None else asdict(snapshot.broker),
        "reasons": snapshot.reasons,
        "agents": [link.agent_id for link in hub.agents.links()],
    }


def _rhythms(hub: FarmResilienceHub) -> dict[str, Any]:
    """Return each monitored sensor's learned rhythm and the silence it is allowed."""
    staleness = hub.staleness
    return {
        sensor: {
            "p90_interval_s": rhythm.p90_s,
            "intervals": len(rhythm.intervals),
            "stale_after_s": silence_limit(rhythm, staleness.stale_after).seconds,
        }
        for sensor, rhythm in staleness.rhythms.items()
    }


def _age(now: float, at: float | None) -> float | None:
    """Return seconds since `at`, None when it never happened."""
    return None if at is None else round(now - at, 3)


def _agent_diagnostics(link: AgentLink, now: float) -> dict[str, Any]:
    """Return the agent's topics, availability, status and last health (`now`: monotonic)."""
    availability = link.availability
    outage = availability.outage()
    return {
        "agent_id": link.agent_id,
        "status_topic": link.status_topic,
        "health_topic": link.health_topic,
        "mqtt_connected": availability.mqtt_connected,
        "status": availability.status,
        "online": availability.online,
        "available": availability.available,
        "silent": availability.silent,
        "silent_after_s": availability.silent_after,
        "unavailable": None
        if outage is None
        else {"why": outage[1], "for_s": _age(now, outage[0])},
        "status_age_s": _age(now, link.status_received_at),
        "health_age_s": _age(now, availability.health_received_at),
        "last_health": None
        if availability.health is None
        else async_redact_data(dict(availability.health.payload), TO_REDACT),
        "rejected_payloads": link.rejected,
        "last_rejection": link.last_rejection,
    }
