"""One health report without a running relay: what `farm-agent check` shows.

It does not start the relay and does not take the agent's MQTT session: it connects
with a client id of its own and leaves no session behind. Besides what the agent
reports, it lists a database route whose server is not verified (no
`backend.tls.ca_file`), which the agent only logs once at start. The objectives come
from the running agent's history, read only, and from the task figures.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time

from farm_agent.config import AgentConfig
from farm_agent.database import routes, tls_warning
from farm_agent.health.judging import Health, assess, first_reachable_route
from farm_agent.health.probes import Prober
from farm_agent.health.slo_tracker import read_objectives
from farm_agent.mqtt import MqttLink
from farm_agent.relay import idle_snapshot


async def check_once(config: AgentConfig) -> Health:
    """Run every probe once and judge the result."""
    loop = asyncio.get_running_loop()
    mqtt = dataclasses.replace(
        config.mqtt, client_id=f"{config.mqtt.client_id}-check", session_expiry_s=0
    )
    link = MqttLink(mqtt, loop)
    prober = Prober(config, link)
    link.start()
    try:
        found = await prober.run_round()
    finally:
        await prober.close()
        await link.stop()
    route = first_reachable_route(config, found)
    relay = idle_snapshot(route, config.spool.path)
    now = time.time()
    slo = await read_objectives(config, now, route)
    return assess(config, found, relay, now, config_problems=tls_problems(config), slo=slo)


def tls_problems(config: AgentConfig) -> list[str]:
    """Routes whose server is not verified (the running agent says so once, at start)."""
    backend = config.backend
    warnings = (tls_warning(name, dsn, backend.tls) for name, dsn in routes(backend).items())
    return [warning for warning in warnings if warning is not None]
