"""`farm-agent work` as it runs: the worker, and its HTTP endpoint when `tasks.listen` is set.

The endpoint serves /healthz, /readyz (ready while the database answers) and /metrics.
"""

from __future__ import annotations

import asyncio
import logging

from farm_agent.config import AgentConfig
from farm_agent.http import HttpEndpoint
from farm_agent.tasks.handlers import Handler
from farm_agent.tasks.metrics import TaskMetrics
from farm_agent.tasks.worker import Worker

_LOGGER = logging.getLogger("farm_agent")


async def serve(config: AgentConfig, handlers: dict[str, Handler], stop: asyncio.Event) -> None:
    """Run tasks until `stop` is set, then drain; the endpoint serves meanwhile."""
    metrics = TaskMetrics()
    worker = Worker(config, handlers, metrics)
    endpoint = None
    listen = config.tasks.listen
    if listen is not None:
        # Ready while the database answers.
        endpoint = HttpEndpoint(metrics.metrics, lambda: {"database": worker.database.ok})
        await endpoint.start(listen.host, listen.port)
        _LOGGER.info("http endpoint on http://%s:%s/", listen.host, endpoint.port)
    try:
        await worker.run(stop)
    finally:
        if endpoint is not None:
            await endpoint.stop()
