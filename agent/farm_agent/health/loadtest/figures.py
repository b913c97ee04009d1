"""What a load test measured, per route, as plain values and as the contract's JSON."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from farm_agent.database import Route
from farm_agent.health.loadtest.latencies import Latencies


@dataclass(frozen=True, slots=True)
class LoadPlan:
    """How hard to push: clients, seconds per route, and the query each client repeats."""

    clients: int
    duration_s: float
    query: str
    # A query of the operator's own runs in a READ ONLY transaction: the server refuses a write.
    read_only_transaction: bool


@dataclass
class Tally:
    """The figures of one route while its clients run; only the event loop touches them."""

    connects: Latencies = field(default_factory=Latencies)
    queries: Latencies = field(default_factory=Latencies)
    errors: Counter[str] = field(default_factory=Counter)
    # Sentences naming pool exhaustion, by kind, in the pooler's own words.
    exhaustion: dict[str, str] = field(default_factory=dict)
    connected: int = 0
    cl_waiting_max: int = 0


@dataclass(frozen=True, slots=True)
class Progress:
    """A glance at a running route, for the line shown once a second."""

    route: Route
    elapsed_s: float
    duration_s: float
    connected: int
    queries: int
    errors: int
    # The route's clients are all done (the last queries may end after the duration).
    done: bool = False

    def line(self) -> str:
        if self.done:
            return (
                f"{self.route}: done in {self.elapsed_s:.1f} s, {self.queries:,} queries,"
                f" {self.errors:,} errors"
            )
        return (
            f"{self.route}: {self.elapsed_s:.0f}/{self.duration_s:g} s, {self.connected} clients"
            f" connected, {self.queries:,} queries, {self.errors:,} errors"
        )


@dataclass(frozen=True, slots=True)
class RouteFigures:
    """One route under load (`routes.<route>` in the JSON)."""

    clients: int
    connect_ms: dict[str, float | None]
    query_ms: dict[str, float | None]
    queries: int
    errors: dict[str, int]
    exhaustion: tuple[str, ...]
    cl_waiting_max: int | None
    duration_s: float

    @property
    def pool_exhausted(self) -> bool:
        return bool(self.exhaustion)

    @property
    def throughput_per_s(self) -> float:
        return self.queries / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def failed(self) -> bool:
        """Not one query answered."""
        return self.queries == 0

    def as_json(self) -> dict[str, Any]:
        """The contract's keys, then `exhaustion`, `cl_waiting_max` and `duration_s`."""
        return {
            "clients": self.clients,
            "connect_ms": self.connect_ms,
            "query_ms": self.query_ms,
            "queries": self.queries,
            "errors": dict(sorted(self.errors.items())),
            "pool_exhausted": self.pool_exhausted,
            "throughput_per_s": round(self.throughput_per_s, 1),
            "exhaustion": list(self.exhaustion),
            "cl_waiting_max": self.cl_waiting_max,
            "duration_s": round(self.duration_s, 2),
        }


@dataclass(frozen=True, slots=True)
class LoadReport:
    """Every route that ran, pooler first, and the pooler's speed-up over direct."""

    routes: dict[Route, RouteFigures]

    @property
    def speedup(self) -> float | None:
        """Pooler throughput over direct throughput; None unless both ran and direct answered."""
        pooler, direct = self.routes.get(Route.POOLER), self.routes.get(Route.DIRECT)
        if pooler is None or direct is None or direct.throughput_per_s == 0:
            return None
        return pooler.throughput_per_s / direct.throughput_per_s

    def as_json(self) -> dict[str, Any]:
        speedup = self.speedup
        return {
            "routes": {str(route): figures.as_json() for route, figures in self.routes.items()},
            "speedup": None if speedup is None else round(speedup, 2),
        }


def route_figures(
    tally: Tally, clients: int, duration_s: float, admin_console: bool
) -> RouteFigures:
    """The route's figures once its clients are done."""
    return RouteFigures(
        clients=clients,
        connect_ms=tally.connects.summary(),
        query_ms=tally.queries.summary(),
        queries=tally.queries.count,
        errors=dict(tally.errors),
        exhaustion=tuple(
            f"{sentence}, {tally.errors[kind]} times" if tally.errors[kind] else sentence
            for kind, sentence in tally.exhaustion.items()
        ),
        cl_waiting_max=tally.cl_waiting_max if admin_console else None,
        duration_s=duration_s,
    )
