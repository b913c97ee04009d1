"""What the hub keeps in its Store: read into its parts at set-up, gathered from them to save.

The format and its versions are storage.py's; this module knows which part of the
hub each piece belongs to.
"""

from __future__ import annotations

import math
import time
import uuid
from typing import TYPE_CHECKING, Any

from .const import LOGGER
from .issues import async_raise_storage_issue
from .storage import HubStore, StoredMonitors, as_data, parse
from .stored_json import UnreadableStorageError

if TYPE_CHECKING:
    from .hub import FarmResilienceHub

# This run of Home Assistant: monotonic times kept in storage are valid only in it.
RUN = uuid.uuid4().hex


async def async_load_hub(hub: FarmResilienceHub, store: HubStore) -> StoredMonitors | None:
    """Load the stored window and history into the hub; start fresh, with an issue, if unreadable.

    Returns what a reload keeps of the monitors (the caller checks it is of this run).
    """
    try:
        stored = parse(await store.async_load() or {})
    except (
        UnreadableStorageError,
        KeyError,
        TypeError,
        ValueError,
        NotImplementedError,
    ) as err:
        reason = str(err) if isinstance(err, UnreadableStorageError) else repr(err)
        LOGGER.warning(
            "Stored statistics in %s could not be read (%s); starting with an empty window",
            store.path,
            reason,
        )
        async_raise_storage_issue(hub.hass, store.path, reason)
        return None
    wall = time.time()
    hub.statistics.load(stored.buckets, stored.spans, wall)
    hub.burn.load(stored.burn, wall)
    hub.staleness.async_restore_rhythms(stored.rhythms)
    hub.uptime.restore(stored.uptime_buckets, stored.uptime_devices, wall)
    return stored.monitors


def hub_data(hub: FarmResilienceHub) -> dict[str, Any]:
    """Return what goes to storage: the window, history and monitors, never pending commands."""
    now, wall = time.monotonic(), time.time()
    armed_at = hub.outages.armed_at
    broker = hub.broker
    monitors = StoredMonitors(
        run=RUN,
        armed_at=armed_at if armed_at is not None and math.isfinite(armed_at) else None,
        degraded=hub.degradation.is_degraded,
        devices=hub.outages.as_stored(),
        last_report=dict(hub.staleness.last_report),
        broker_down_since=None if broker is None else broker.down_since,
        broker_alerted=broker is not None and broker.alerted,
    )
    history = {
        "burn": hub.burn.as_list(),
        "rhythms": {
            sensor: [round(interval, 3) for interval in rhythm.intervals]
            for sensor, rhythm in hub.staleness.rhythms.items()
            if rhythm.intervals
        },
        "uptime": hub.uptime.as_data(now, wall),
    }
    return as_data(hub.statistics.as_dict(), monitors, history)
