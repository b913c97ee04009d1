"""Constants of the Farm Resilience integration."""

from __future__ import annotations

import logging
from typing import Final

DOMAIN: Final = "farm_resilience"
LOGGER = logging.getLogger(__package__)

HUB_NAME: Final = "Farm Resilience"
HUB_UNIQUE_ID: Final = "hub"
CONF_AGENT_ID: Final = "agent_id"

# Edge agents: one config entry and one device each (DESIGN.md, "MQTT contract").
AGENT_MODEL: Final = "farm-agent"
# agent_id as the agent's config schema allows it.
AGENT_ID_PATTERN: Final = r"[a-z0-9_-]{1,64}"
DEFAULT_TOPIC_PREFIX: Final = "farm_resilience"
STATUS_ONLINE: Final = "online"
STATUS_OFFLINE: Final = "offline"
HEALTH_VERSION: Final = 1
# Dispatcher signal: an agent's availability or health changed (the hub listens).
SIGNAL_AGENT_UPDATE: Final = f"{DOMAIN}_agent_update"

# Option keys: a public contract (DESIGN.md), extend only.
CONF_TRACKED_ENTITIES: Final = "tracked_entities"
CONF_COMMAND_TIMEOUT: Final = "command_timeout"
CONF_SUCCESS_TARGET: Final = "success_target"
CONF_LATENCY_TARGET: Final = "latency_target"
CONF_OUTAGE_ALERT: Final = "outage_alert"
CONF_STALE_AFTER: Final = "stale_after"
CONF_MONITORED_SENSORS: Final = "monitored_sensors"
CONF_WINDOW_HOURS: Final = "window_hours"
CONF_MIN_SAMPLES: Final = "min_samples"
CONF_TOPIC_PREFIX: Final = "topic_prefix"

DEFAULT_SUCCESS_TARGET: Final = 99.0
DEFAULT_MIN_SAMPLES: Final = 20
DEFAULT_OPTIONS: Final[dict[str, object]] = {
    CONF_TRACKED_ENTITIES: [],
    CONF_COMMAND_TIMEOUT: 5.0,
    CONF_SUCCESS_TARGET: DEFAULT_SUCCESS_TARGET,
    CONF_LATENCY_TARGET: 5.0,
    CONF_OUTAGE_ALERT: 60,
    CONF_STALE_AFTER: 900,
    CONF_MONITORED_SENSORS: [],
    CONF_WINDOW_HOURS: 24,
    CONF_MIN_SAMPLES: DEFAULT_MIN_SAMPLES,
    CONF_TOPIC_PREFIX: DEFAULT_TOPIC_PREFIX,
}

CONTROLLABLE_DOMAINS: Final = frozenset(
    {
        "climate",
        "cover",
        "fan",
        "humidifier",
        "light",
        "lock",
        "siren",
        "switch",
        "valve",
        "water_heater",
    }
)

# Outcomes of a command: a public contract (DESIGN.md), extend only.
OUTCOME_SUCCESS: Final = "success"
OUTCOME_TIMEOUT: Final = "timeout"
OUTCOME_UNAVAILABLE: Final = "unavailable"
OUTCOME_SUPERSEDED: Final = "superseded"
OUTCOME_NOOP: Final = "noop"
# A success undone within BOUNCE_WINDOW_S with no newer command: reported after the
# success of the same command, counted apart, not in the success rate.
OUTCOME_BOUNCED: Final = "bounced"
OUTCOMES: Final = (
    OUTCOME_SUCCESS,
    OUTCOME_TIMEOUT,
    OUTCOME_UNAVAILABLE,
    OUTCOME_SUPERSEDED,
    OUTCOME_NOOP,
    OUTCOME_BOUNCED,
)
COUNTED_OUTCOMES: Final = frozenset({OUTCOME_SUCCESS, OUTCOME_TIMEOUT, OUTCOME_UNAVAILABLE})

# A relay that clicks on and falls back within this did not do what it was told.
BOUNCE_WINDOW_S: Final = 3.0

EVENT_COMMAND: Final = "farm_resilience_command"
EVENT_DEGRADED: Final = "farm_resilience_degraded"
EVENT_RECOVERED: Final = "farm_resilience_recovered"
# An outage (a device down or flapping, the broker link lost) is over: how long it lasted.
EVENT_OUTAGE_OVER: Final = "farm_resilience_outage_over"
OUTAGE_BROKER: Final = "broker_disconnected"

SERVICE_SEND_COMMAND: Final = "send_command"
SERVICE_RESET_STATISTICS: Final = "reset_statistics"

STORAGE_KEY: Final = f"{DOMAIN}.statistics"
STORAGE_VERSION: Final = 1
# Batch writes: a busy farm produces many outcomes a minute; one write a minute at most.
STORAGE_SAVE_DELAY: Final = 60
