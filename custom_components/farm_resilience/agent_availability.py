"""An edge agent's availability rules, as plain state fed with what arrives and when; no I/O.

The rules (docs/home-assistant.md, "Edge agents" → "Status and health"):

- The status topic is the truth: `online` makes the agent available, `offline`
  (also its last will), an empty (cleared) status or no status at all does not.
- A message the broker replays from its retained store (on subscribe or after a
  reconnect) is old news; a live one is news now. A live health payload can only
  come from a running agent, so it makes the agent available even after an
  `offline` (a will delivered late, after the agent had already reconnected).
- A retained `online` replayed after an `offline` was applied counts only once a
  health payload newer than the last one before that `offline` arrives: a broker
  that lost the will in a crash replays an `online` of a dead agent, together
  with its old health.
- Health `ts` is compared only with earlier `ts` of the same agent, never with
  Home Assistant's clock (a farm computer's clock may be wrong): a replayed
  health older than the one shown is ignored, and no health, however recent its
  `ts`, makes the agent available when it was replayed.
- An online agent that sends no health for 3 probe intervals (learnt from the
  gaps between its live health payloads; at least 60 s) is silent: its figures
  are unavailable until the next one. A hung agent keeps its MQTT connection,
  so neither `offline` nor the will comes.
- Without Home Assistant's broker connection nothing is known.

Times are monotonic seconds handed in by the caller (the agent link); nothing here
reads a clock, subscribes or logs, so every rule is tested with plain numbers.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from datetime import datetime
from itertools import pairwise

from .agent_health import AgentHealth
from .const import STATUS_ONLINE

# An online agent without health for this many probe intervals (at least the minimum) is silent.
SILENT_AFTER_INTERVALS = 3
MIN_SILENT_AFTER_S = 60.0
# Live health arrivals remembered to learn the probe interval (their largest gap).
INTERVAL_SAMPLES = 5


@dataclass(frozen=True, slots=True)
class AgentState:
    """What an agent's entities show at one moment."""

    mqtt_connected: bool
    online: bool
    # Online, broker connected and not silent: the figures are current.
    available: bool
    health: AgentHealth | None


class AgentAvailability:
    """The availability of one agent, by the rules of this module."""

    def __init__(self, now: float) -> None:
        """Start unknown: not connected, no status, no health, unavailable since `now`."""
        self.mqtt_connected = False
        self.status: str | None = None
        self.online = False
        self.silent = False
        self.health: AgentHealth | None = None
        self.health_received_at: float | None = None
        # Since when the agent is unavailable; None while it is available.
        self.down_since: float | None = now
        # Set when an `offline` is applied: the health ts shown at that moment.
        self._offline_seen = False
        self._offline_health_ts: datetime | None = None
        self._online_unconfirmed = False
        self._live_health_at: deque[float] = deque(maxlen=INTERVAL_SAMPLES)
        # Silence counts from the last live health (or reconnect); None: not counting.
        self._silence_from: float | None = None

    @property
    def available(self) -> bool:
        """Return whether the figures are current: broker connected, agent online, heard."""
        return self.mqtt_connected and self.online and not self.silent

    @property
    def silent_after(self) -> float | None:
        """Return how long an online agent may go without health; None until learnt."""
        if len(self._live_health_at) < 2:
            return None
        interval = max(later - earlier for earlier, later in pairwise(self._live_health_at))
        return max(SILENT_AFTER_INTERVALS * interval, MIN_SILENT_AFTER_S)

    @property
    def silent_at(self) -> float | None:
        """Return when the agent is found silent unless live health comes first; None: never."""
        if self._silence_from is None or (silent_after := self.silent_after) is None:
            return None
        return self._silence_from + silent_after

    def state(self) -> AgentState:
        """Return what the entities show now."""
        return AgentState(self.mqtt_connected, self.online, self.available, self.health)

    def outage(self) -> tuple[float, str] | None:
        """Return since when and why the agent is unavailable, or None while it is available."""
        if self.down_since is None:
            return None
        if not self.mqtt_connected:
            return self.down_since, "unreachable (Home Assistant is not connected to the broker)"
        if self.online:
            return self.down_since, "silent (online, but no health for 3 probe intervals)"
        if self.status is None:
            return self.down_since, "no status"
        return self.down_since, "offline"

    def connection_changed(self, connected: bool, now: float) -> None:
        """Follow Home Assistant's broker connection.

        Health published while Home Assistant was away is not silence: back
        connected, silence counts anew.
        """
        self.mqtt_connected = connected
        self._silence_from = now if connected else None
        self._track(now)

    def status_received(self, status: str | None, *, replayed: bool, now: float) -> bool:
        """Apply `online`, `offline` or a cleared status (None).

        Return False for a replayed `online` that waits for newer health first.
        """
        if status == STATUS_ONLINE:
            if replayed and self._offline_seen and not self._health_since_offline():
                # Possibly a dead agent's `online` that a crashed broker kept: wait for news.
                self.status = status
                self._online_unconfirmed = True
                self._track(now)
                return False
            self._set_online(status, online=True)
        else:
            self._set_online(status, online=False)
        self._track(now)
        return True

    def health_received(self, health: AgentHealth, *, replayed: bool, now: float) -> bool:
        """Show a valid health payload; return False for a replay older than the one shown."""
        if replayed and self.health is not None and health.ts < self.health.ts:
            return False
        self.health = health
        self.health_received_at = now
        if not replayed:
            self._live_health_at.append(now)
            self.silent = False
            self._silence_from = now
            self._set_online(self.status, online=True)
        elif self._online_unconfirmed and self._health_since_offline():
            self._set_online(STATUS_ONLINE, online=True)
        self._track(now)
        return True

    def silence_check(self, now: float) -> bool:
        """From `silent_at` on, stop counting; return whether an online agent just went silent."""
        if (silent_at := self.silent_at) is None or now < silent_at:
            return False
        self._silence_from = None
        if not self.online or self.silent:
            return False
        self.silent = True
        self._track(now)
        return True

    def _health_since_offline(self) -> bool:
        """Return whether the health shown was published after the last `offline` applied."""
        if self.health is None:
            return False
        return self._offline_health_ts is None or self.health.ts > self._offline_health_ts

    def _set_online(self, status: str | None, *, online: bool) -> None:
        """Record the status and whether the agent is online."""
        self.status = status
        self.online = online
        self._online_unconfirmed = False
        if online:
            self._offline_seen = False
            return
        self._offline_seen = True
        self._offline_health_ts = None if self.health is None else self.health.ts
        # A restarted agent may probe at another interval: learn it again.
        self._live_health_at.clear()
        self._silence_from = None
        self.silent = False

    def _track(self, now: float) -> None:
        """Note since when the agent is unavailable."""
        if self.available:
            self.down_since = None
        elif self.down_since is None:
            self.down_since = now
