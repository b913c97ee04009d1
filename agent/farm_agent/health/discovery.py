"""Home Assistant MQTT discovery for the agent's key figures: entity descriptions as data.

Each figure becomes one entity of a device named after the agent, reading the
retained health JSON; all are unavailable while the status topic says `offline`.
A null figure renders as `None`, which Home Assistant shows as unknown.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from farm_agent import __version__
from farm_agent.config import AgentConfig
from farm_agent.database import Route
from farm_agent.health.status import HealthStatus
from farm_agent.topics import (
    STATUS_OFFLINE,
    STATUS_ONLINE,
    discovery_topic,
    health_topic,
    status_topic,
)

# Health older than this many probe intervals is shown as unavailable: an agent whose
# loop hangs keeps its MQTT connection (and so its `online`) alive.
EXPIRE_AFTER_INTERVALS = 3
MIN_EXPIRE_AFTER_S = 60


@dataclass(frozen=True, slots=True, kw_only=True)
class Figure:
    """One entity: where its value sits in the health JSON and how Home Assistant shows it."""

    key: str
    name: str
    value_template: str
    component: str = "sensor"
    unit: str | None = None
    device_class: str | None = None
    state_class: str | None = None
    options: tuple[str, ...] | None = None
    diagnostic: bool = False


def _measure(key: str, name: str, path: str, unit: str | None = None, **extra: Any) -> Figure:
    return Figure(
        key=key,
        name=name,
        value_template=f"{{{{ value_json.{path} }}}}",
        unit=unit,
        state_class=extra.pop("state_class", "measurement"),
        **extra,
    )


FIGURES: tuple[Figure, ...] = (
    Figure(
        key="backend_problem",
        name="Backend problem",
        component="binary_sensor",
        value_template=f"{{{{ 'ON' if value_json.status != '{HealthStatus.OK}' else 'OFF' }}}}",
        device_class="problem",
    ),
    Figure(
        key="status",
        name="Health",
        value_template="{{ value_json.status }}",
        device_class="enum",
        options=tuple(HealthStatus),
    ),
    Figure(
        key="route",
        name="Database route",
        value_template="{{ value_json.backend.route }}",
        device_class="enum",
        options=tuple(Route),
    ),
    _measure(
        "pooler_latency",
        "Pooler latency",
        "backend.pooler_latency_ms",
        "ms",
        device_class="duration",
    ),
    _measure(
        "direct_latency",
        "Direct latency",
        "backend.direct_latency_ms",
        "ms",
        device_class="duration",
    ),
    _measure(
        "fallbacks",
        "Fallbacks",
        "backend.fallbacks_total",
        state_class="total_increasing",
        diagnostic=True,
    ),
    _measure("queue_depth", "Queue depth", "queue.depth"),
    _measure(
        "queue_oldest_age", "Oldest queued", "queue.oldest_age_s", "s", device_class="duration"
    ),
    _measure("dlq_depth", "Dead letters", "queue.dlq_depth"),
    _measure(
        "processing_p95", "Processing p95", "queue.processing_p95_s", "s", device_class="duration"
    ),
    _measure("task_success", "Task success", "queue.task_success_pct", "%"),
    _measure("spool_depth", "Spool depth", "relay.spool_depth"),
    _measure(
        "relay_latency_p95",
        "Relay latency p95",
        "relay.e2e_latency_p95_ms",
        "ms",
        device_class="duration",
    ),
    _measure("relayed", "Relayed", "relay.relayed_total", state_class="total_increasing"),
    _measure(
        "received",
        "Received",
        "relay.received_total",
        state_class="total_increasing",
        diagnostic=True,
    ),
    _measure(
        "dead_lettered",
        "Dead-lettered",
        "relay.dead_lettered_total",
        state_class="total_increasing",
        diagnostic=True,
    ),
)


def node_id(agent_id: str) -> str:
    return f"farm_agent_{agent_id}"


def device(config: AgentConfig) -> dict[str, Any]:
    # Named after the agent_id, as the Farm Resilience integration names the same
    # device (it carries this identifier too): one device, one name.
    return {
        "identifiers": [node_id(config.agent_id)],
        "name": config.agent_id,
        "manufacturer": "Farm Resilience",
        "model": "farm-agent",
        "sw_version": __version__,
    }


def discovery_messages(config: AgentConfig) -> list[tuple[str, dict[str, Any]]]:
    """Every discovery (topic, config) of this agent; empty when discovery is off."""
    prefix = config.mqtt.discovery_prefix
    if prefix is None:
        return []
    node = node_id(config.agent_id)
    status = status_topic(config.mqtt.topic_prefix, config.agent_id)
    common = {
        "device": device(config),
        "origin": {"name": "farm-agent", "sw_version": __version__},
    }
    messages = [
        (
            discovery_topic(prefix, "binary_sensor", node, "connectivity"),
            {
                **common,
                "name": "Connectivity",
                "unique_id": f"{node}_connectivity",
                "object_id": f"{node}_Connectivity",
                "state_topic": status,
                "payload_on": STATUS_ONLINE,
                "payload_off": STATUS_OFFLINE,
                "device_class": "connectivity",
                "entity_category": "diagnostic",
            },
        )
    ]
    for figure in FIGURES:
        topic = discovery_topic(prefix, figure.component, node, figure.key)
        messages.append((topic, {**common, **_figure_config(config, figure, node, status)}))
    return messages


def _figure_config(config: AgentConfig, figure: Figure, node: str, status: str) -> dict[str, Any]:
    health = health_topic(config.mqtt.topic_prefix, config.agent_id)
    expire_after = max(MIN_EXPIRE_AFTER_S, round(EXPIRE_AFTER_INTERVALS * config.probes.interval_s))
    body: dict[str, Any] = {
        "name": figure.name,
        "unique_id": f"{node}_{figure.key}",
        # The entity ids the device's old name "Farm agent <agent_id>" gave, whatever it
        # is named now: the integration's own (<agent_id>_<...>) stay theirs.
        "object_id": f"{node}_{figure.name}",
        "state_topic": health,
        "value_template": figure.value_template,
        "availability_topic": status,
        "payload_available": STATUS_ONLINE,
        "payload_not_available": STATUS_OFFLINE,
        "expire_after": expire_after,
    }
    optional = {
        "unit_of_measurement": figure.unit,
        "device_class": figure.device_class,
        "state_class": figure.state_class,
        "options": list(figure.options) if figure.options else None,
        "entity_category": "diagnostic" if figure.diagnostic else None,
    }
    body.update({key: value for key, value in optional.items() if value is not None})
    if figure.component == "binary_sensor":
        body["json_attributes_topic"] = health
        body["json_attributes_template"] = "{{ {'problems': value_json.problems} | tojson }}"
    return body
