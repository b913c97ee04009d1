"""MQTT topic names of the agent -> Home Assistant contract, in one place."""

from __future__ import annotations

STATUS_ONLINE = "online"
STATUS_OFFLINE = "offline"


def status_topic(prefix: str, agent_id: str) -> str:
    """Retained `online` / `offline`; `offline` is also the last will."""
    return f"{prefix}/agent/{agent_id}/status"


def health_topic(prefix: str, agent_id: str) -> str:
    """Retained health JSON, each probe interval and on every status change."""
    return f"{prefix}/agent/{agent_id}/health"


def probe_topic(prefix: str, agent_id: str) -> str:
    """Where the agent times its own MQTT round trip."""
    return f"{prefix}/agent/{agent_id}/probe"


def birth_topic(discovery_prefix: str) -> str:
    """Home Assistant's own status: `online` when it (re)starts and wants discovery again."""
    return f"{discovery_prefix}/status"


def discovery_topic(discovery_prefix: str, component: str, node_id: str, object_id: str) -> str:
    """Where Home Assistant MQTT discovery looks for an entity's config."""
    return f"{discovery_prefix}/{component}/{node_id}/{object_id}/config"
