"""Run every probe at once, each within its own timeout, and gather what they found."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, TypeVar

import asyncpg

from farm_agent import database
from farm_agent.config import AgentConfig
from farm_agent.database import Route
from farm_agent.failures import DATABASE_ERRORS, describe_failure, probe_errors
from farm_agent.health.metrics import ProbeMetrics
from farm_agent.health.probes import postgres, queue, tasks
from farm_agent.health.probes.mqtt import MqttRoundTrip
from farm_agent.health.probes.pool import read_pool, with_pool
from farm_agent.health.probes.result import (
    FigureProbe,
    PoolReport,
    ProbeKind,
    ProbeResult,
    ProbeRound,
    failure,
)
from farm_agent.mqtt import MqttLink
from farm_agent.topics import probe_topic

if TYPE_CHECKING:
    import aiohttp

    from farm_agent.health.probes.http import HttpProbe

_LOGGER = logging.getLogger(__name__)
_T = TypeVar("_T")
_F = TypeVar("_F")

# Per route: None when it answered, else why not (the relay's router counts them).
RouteVerdicts = Callable[[Mapping[Route, str | None]], None]


class Prober:
    """Runs the configured probes; keeps what outlives a round (HTTP hit history, session)."""

    def __init__(
        self, config: AgentConfig, link: MqttLink, metrics: ProbeMetrics | None = None
    ) -> None:
        self._config = config
        self._metrics = metrics
        self._http = _http_probes(config)
        topic = probe_topic(config.mqtt.topic_prefix, config.agent_id)
        self._round_trip = MqttRoundTrip(link, topic)
        self._task_probe = tasks.probe(config.tasks)
        self._session: aiohttp.ClientSession | None = None
        self._route_verdicts: RouteVerdicts | None = None

    def report_route_verdicts_to(self, receiver: RouteVerdicts) -> None:
        """After each round, tell `receiver` which database routes answered (the relay's router)."""
        self._route_verdicts = receiver

    async def run_round(self, active_route: Route | None = None) -> ProbeRound:
        """Every probe once, concurrently; a slow probe holds up only its own result.

        `active_route` is the relay's route: the queue and task probes use it first.
        """
        timeout_s = self._config.probes.timeout_s
        if self._http and self._session is None:
            from farm_agent.health.probes.http import new_session  # noqa: PLC0415

            self._session = new_session()
        backend = self._config.backend
        configured = list(database.routes(backend))
        databases = asyncio.gather(
            *(
                _bounded(
                    postgres.probe_route(name, backend, timeout_s),
                    timeout_s,
                    _failed(postgres.probe_name(name), postgres.KIND),
                )
                for name in configured
            )
        )
        pool = self._read_pool()
        endpoints = asyncio.gather(*(self._probe_http(probe) for probe in self._http))
        queue_probe = self._with_connection(queue.PROBE, active_route)
        task_probe = self._with_connection(self._task_probe, active_route)
        (
            database_results,
            pool_report,
            (queue_result, queue_figures),
            (task_result, task_figures),
            http_results,
            mqtt_result,
        ) = await asyncio.gather(
            databases, pool, queue_probe, task_probe, endpoints, self._round_trip.run(timeout_s)
        )
        if Route.POOLER in configured:
            at = configured.index(Route.POOLER)
            database_results[at] = with_pool(database_results[at], pool_report)
        found = ProbeRound(
            databases=tuple(database_results),
            queue=queue_figures,
            tasks=task_figures,
            results=(*database_results, queue_result, task_result, *http_results, mqtt_result),
            broker_connected=self._round_trip.connected,
            subscription_problems=self._round_trip.subscription_problems,
        )
        self._record(found)
        if self._route_verdicts is not None:
            self._route_verdicts(
                {
                    name: None if result.ok else result.detail
                    for name, result in zip(configured, database_results, strict=True)
                }
            )
        return found

    async def _read_pool(self) -> PoolReport:
        """The pooler's pool from its admin console, if one is configured and answers."""
        backend, timeout_s = self._config.backend, self._config.probes.timeout_s
        if backend.pooler_admin_dsn is None:
            return PoolReport(None)
        try:
            return PoolReport(await asyncio.wait_for(read_pool(backend, timeout_s), timeout_s))
        except TimeoutError:
            return PoolReport(None, f"admin console: no answer within {timeout_s:g} s")
        except (*DATABASE_ERRORS, ValueError, LookupError) as err:
            return PoolReport(None, f"admin console: {describe_failure(err)}")

    async def _with_connection(
        self, probe: FigureProbe[_F], active_route: Route | None
    ) -> tuple[ProbeResult, _F | None]:
        """A probe reading figures over a connection of its own, on the relay's route first."""
        timeout_s = self._config.probes.timeout_s
        backend = self._config.backend

        async def attempt() -> tuple[ProbeResult, _F | None]:
            _, connection = await database.connect_any(backend, timeout_s, active_route)
            try:
                started = time.perf_counter()
                try:
                    figures = await probe.read(connection, backend)
                except asyncpg.UndefinedTableError:
                    return failure(probe.name, probe.kind, probe.missing(backend)), None
                latency_ms = (time.perf_counter() - started) * 1000
                detail = probe.describe(figures)
                return ProbeResult(probe.name, probe.kind, True, latency_ms, detail), figures
            finally:
                await database.close_quietly(connection)

        def failed(detail: str) -> tuple[ProbeResult, _F | None]:
            return failure(probe.name, probe.kind, detail), None

        return await _bounded(attempt(), timeout_s, failed)

    async def _probe_http(self, probe: HttpProbe) -> ProbeResult:
        assert self._session is not None
        config = probe.config
        return await _bounded(
            probe.run(self._session), config.timeout_s, _failed(config.name, ProbeKind.HTTP)
        )

    def _record(self, found: ProbeRound) -> None:
        metrics = self._metrics
        if metrics is None:
            return
        for result in found.results:
            metrics.record_probe(result.name, result.kind, result.ok, result.latency_ms)
            if result.cache is not None:
                ratio = result.cache.hit_ratio
                metrics.cache_hit_ratio.labels(probe=result.name).set(
                    math.nan if ratio is None else ratio
                )
        backend, depths, done = self._config.backend, found.queue, found.tasks
        metrics.record_queue(
            backend.queue,
            "main",
            depths.depth if depths else None,
            depths.oldest_age_s if depths else None,
        )
        metrics.record_queue(
            backend.dead_letter_queue,
            "dead_letter",
            depths.dlq_depth if depths else None,
            depths.dlq_oldest_age_s if depths else None,
        )
        metrics.record_tasks(
            done.processing_p95_s if done else None, done.task_success_pct if done else None
        )
        metrics.record_task_queues(done.section if done else None)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _http_probes(config: AgentConfig) -> list[HttpProbe]:
    """The configured HTTP probes. aiohttp (megabytes on a small host) loads only for them."""
    if not config.probes.http:
        return []
    from farm_agent.health.probes.http import HttpProbe  # noqa: PLC0415

    return [HttpProbe(probe) for probe in config.probes.http]


def _failed(name: str, kind: ProbeKind) -> Callable[[str], ProbeResult]:
    return lambda detail: failure(name, kind, detail)


async def _bounded(probe: Awaitable[_T], timeout_s: float, on_failure: Callable[[str], _T]) -> _T:
    """The probe's answer; after `timeout_s` or an error, what `on_failure` makes of it."""
    try:
        return await asyncio.wait_for(probe, timeout_s)
    except TimeoutError:
        return on_failure(f"no answer within {timeout_s:g} s")
    except Exception as err:  # a probe reports a failure, it never stops the agent
        if not isinstance(err, probe_errors()):
            _LOGGER.warning("probe failed unexpectedly", exc_info=err)
        return on_failure(describe_failure(err))
