"""The relay's figures, kept once: Prometheus metrics that the health report reads too."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

ROUTES = ("pooler", "direct", "none")
# From publish to commit: most readings take milliseconds, a backlog drains in minutes.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800)


class RelayMetrics:
    """Counters and gauges of one agent, in a registry of its own (several agents per test)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        registry = self.registry
        self.received = Counter(
            "farm_agent_readings_received", "Readings committed to the spool", registry=registry
        )
        self.relayed = Counter(
            "farm_agent_readings_relayed", "Readings committed to the queue", registry=registry
        )
        self.dead_lettered = Counter(
            "farm_agent_readings_dead_lettered",
            "Readings sent to the dead-letter queue",
            registry=registry,
        )
        self.redeliveries = Counter(
            "farm_agent_mqtt_redeliveries",
            "Broker redeliveries (DUP) of readings already on disk, not stored twice",
            registry=registry,
        )
        self.duplicates_suppressed = Counter(
            "farm_agent_duplicates_suppressed",
            "Readings the ledger showed were already in the queue (resent after a crash)",
            registry=registry,
        )
        self.batches_failed = Counter(
            "farm_agent_batches_failed",
            "Batches that failed and will be retried",
            registry=registry,
        )
        self.spool_depth = Gauge(
            "farm_agent_spool_depth",
            "Readings on local disk waiting for the queue",
            registry=registry,
        )
        self.backpressure = Gauge(
            "farm_agent_spool_backpressure",
            "1 while the spool is full and MQTT messages are left unacknowledged",
            registry=registry,
        )
        self.route = Gauge(
            "farm_agent_backend_route",
            "1 for the route the relay uses now (pooler, direct or none)",
            ["route"],
            registry=registry,
        )
        self.fallbacks = Counter(
            "farm_agent_backend_fallbacks",
            "Switches from the pooler to the direct connection",
            registry=registry,
        )
        self.relay_latency = Histogram(
            "farm_agent_relay_latency_seconds",
            "Time from MQTT arrival to queue commit",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.set_route("none")

    def set_route(self, active: str) -> None:
        for route in ROUTES:
            self.route.labels(route=route).set(1 if route == active else 0)
