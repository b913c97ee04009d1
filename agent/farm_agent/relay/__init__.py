"""The relay: MQTT readings into the queue, each exactly once, through a spool on disk.

Read `pipeline` first: it says which module does what on a reading's way. The rest of
the agent uses only what is exported here.
"""

from farm_agent.relay.metrics import RelayMetrics, RelaySnapshot
from farm_agent.relay.pipeline import Relay, idle_snapshot, open_spool
from farm_agent.relay.spool import SpoolError

__all__ = ["Relay", "RelayMetrics", "RelaySnapshot", "SpoolError", "idle_snapshot", "open_spool"]
