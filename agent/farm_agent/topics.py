"""MQTT topic names of the agent -> Home Assistant contract, in one place.

Shared: the health publisher publishes on these topics, ingest must never relay them,
and the config refuses reading filters that overlap them.
"""

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


def not_reading_filters(topic_prefix: str, discovery_prefix: str | None) -> dict[str, str]:
    """Filters of the topics the agent never relays, by the config key that places them.

    Its own and other agents' status, health and probe messages live under
    `<topic_prefix>/agent/`, Home Assistant's discovery and status under
    `<discovery_prefix>/`; a message there is taken by the agent, never spooled.
    """
    found = {"mqtt.topic_prefix": f"{topic_prefix}/agent/+/#"}
    if discovery_prefix is not None:
        found["mqtt.discovery_prefix"] = f"{discovery_prefix}/+/#"
    return found


def not_reading_prefixes(topic_prefix: str, discovery_prefix: str | None) -> tuple[str, ...]:
    """How the topics of `not_reading_filters` begin: what ingest takes and never spools."""
    filters = not_reading_filters(topic_prefix, discovery_prefix).values()
    return tuple(own.removesuffix("+/#") for own in filters)


def subscription_filter(subscription: str) -> str:
    """The topic filter of a subscription: `$share/<group>/<filter>` shares `<filter>`."""
    if subscription.startswith("$share/"):
        return subscription.split("/", 2)[2]
    return subscription


def filters_overlap(first: str, second: str) -> bool:
    """Whether some topic matches both MQTT topic filters (wildcards `+` and `#`)."""
    a, b = first.split("/"), second.split("/")
    # A wildcard in the first level never matches a topic that starts with `$`.
    if _hides_dollar_topics(a[0], b[0]) or _hides_dollar_topics(b[0], a[0]):
        return False
    for level in range(max(len(a), len(b))):
        mine = a[level] if level < len(a) else None
        theirs = b[level] if level < len(b) else None
        if mine == "#" or theirs == "#":
            return True  # `#` also matches the parent level, so any rest will do
        if mine is None or theirs is None:
            return False
        if mine != theirs and "+" not in (mine, theirs):
            return False
    return True


def _hides_dollar_topics(level: str, other: str) -> bool:
    return level in ("+", "#") and other.startswith("$")
