"""The demo farm's frost alerts: `send_notification` tasks, as a farm's own software submits them.

A simulated cold night: every `period_s` (the first at once) one field's air drops
towards 0 °C, and a high-priority `send_notification` task is submitted with
`farm_agent.tasks.submit`. The worker's built-in `notify_mqtt` handler publishes it to
`farm_resilience/notify/frost`, where the demo's Home Assistant automation turns it
into a persistent notification.
"""

from __future__ import annotations

import asyncio
import logging
import threading

import asyncpg

from farm_agent.tasks import submit

_LOGGER = logging.getLogger(__name__)
FIELDS = 5


class FrostAlerts:
    """Submits a frost alert every `period_s` on a thread of its own; counts those sent."""

    def __init__(self, dsn: str, queue: str = "farm_tasks", period_s: float = 20.0) -> None:
        self.dsn = dsn
        self.queue = queue
        self.period_s = period_s
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="frost-alerts", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                asyncio.run(self._alert(self.sent))
                self.sent += 1
            except (OSError, asyncpg.PostgresError) as err:
                # The database restarting or gone (the demo stopping): try again next time.
                _LOGGER.warning("frost alert not submitted: %s", err)
            self._stop.wait(self.period_s)

    async def _alert(self, number: int) -> None:
        field = number % FIELDS + 1
        celsius = round(1.8 - 0.4 * (number % 5), 1)
        await submit(
            self.dsn,
            "send_notification",
            {
                "message": f"Frost risk in field {field}: air at {celsius} °C",
                "target": "frost",
                "field": field,
                "air_temperature_c": celsius,
            },
            priority="high",
            queue=self.queue,
        )

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(10)
