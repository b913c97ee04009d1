"""Built-in handlers, registered unless the config maps their type to null.

- `store_readings` (type `sensor_reading`): keeps a relayed reading (the relay's queue
  envelope, e.g. from `tasks.sources: [{queue: sensor_readings, type: sensor_reading}]`)
  in `farm_resilience.readings`, once per reading key, numbers exactly as relayed.
- `notify_mqtt` (type `send_notification`): publishes the payload, with the task id, to
  `<mqtt.topic_prefix>/notify/<target>` with QoS 1 and waits for the broker's PUBACK, for
  Home Assistant automations. Delivery is at-least-once: use `id` to drop a repeat.
- `canary` (type `canary`): does nothing. `farm-agent check` sends one and waits for a
  worker to finish it, to see task processing work end to end (farm_agent.tasks.canary).
"""

from __future__ import annotations

import json
import re

from farm_agent.tasks import sql
from farm_agent.tasks.context import current_context
from farm_agent.tasks.envelope import read_reading
from farm_agent.tasks.task import PermanentError, Task

NOTIFY_TARGET = re.compile(r"[a-z0-9_-]{1,64}")
DEFAULT_TARGET = "all"


def notify_topic(topic_prefix: str, target: str) -> str:
    """Where a notification for `target` is published."""
    return f"{topic_prefix}/notify/{target}"


async def store_readings(task: Task) -> None:
    """Insert the reading into farm_resilience.readings unless its key is there already."""
    problem = read_reading(task.payload, task.payload_json, task.type, task.attempt)
    if isinstance(problem, str):
        raise PermanentError(f"payload is {problem}")
    if not isinstance(task.payload.get("agent_id"), str):
        raise PermanentError("payload is not a reading envelope: agent_id is required")
    async with current_context().database.connection() as connection:
        await connection.execute(sql.STORE_READING, task.payload_json)


async def notify_mqtt(task: Task) -> None:
    """Publish a notification: payload {"message": "...", "target": "irrigation", ...}."""
    payload = task.payload
    if not isinstance(payload, dict) or not isinstance(payload.get("message"), str):
        raise PermanentError('payload must be an object with a "message" string')
    target = payload.get("target", DEFAULT_TARGET)
    if not isinstance(target, str) or not NOTIFY_TARGET.fullmatch(target):
        raise PermanentError(
            f"payload target must be 1-64 characters of a-z, 0-9, '_' or '-' (got {target!r})"
        )
    context = current_context()
    body = json.dumps({"id": task.id, **payload}, ensure_ascii=False).encode()
    await context.mqtt.publish(notify_topic(context.config.mqtt.topic_prefix, target), body)


async def canary(task: Task) -> None:
    """Nothing: that a worker took the task and archived it is the whole answer."""
