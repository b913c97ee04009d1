"""The broker link: Home Assistant's own connection to the MQTT broker, timed and alerted on.

Followed through the MQTT integration's connection signal. Lost for longer than
`outage_alert` (counted from arming, as device outages are), it raises a repair
issue and a degraded reason; back, the issue goes and a `farm_resilience_outage_over`
event says how long it lasted. A reconnect is a connection that comes back after
one was seen lost: the first connection after Home Assistant starts is none.
Uptime and reconnects over the window are kept by the uptime monitor's ledger.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from homeassistant.components import mqtt
from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback

from .bounds import Texts
from .const import LOGGER, OUTAGE_BROKER
from .issues import async_announce_outage_over, async_clear_broker_issue, async_raise_broker_issue
from .timing import MonotonicCall
from .uptime import UptimeMonitor

BROKER_NAME = "MQTT broker"


@callback
def broker_followed(hass: HomeAssistant) -> bool:
    """Return whether Home Assistant has an MQTT integration whose broker link can be followed."""
    return bool(hass.config_entries.async_entries(mqtt.DOMAIN, include_disabled=False))


@callback
def _connected_now(hass: HomeAssistant) -> bool:
    """Return whether HA's MQTT client is connected; False while it is not set up yet."""
    try:
        return bool(mqtt.is_connected(hass))
    except KeyError:  # the MQTT integration has not been set up (yet)
        return False


class BrokerLink:
    """Whether Home Assistant is connected to the broker, since when, and the alarm."""

    def __init__(
        self,
        hass: HomeAssistant,
        outage_alert: float,
        uptime: UptimeMonitor,
        on_change: Callable[[], None],
    ) -> None:
        """Prepare; `async_start` follows the connection."""
        self.hass = hass
        self.outage_alert = outage_alert
        self._uptime = uptime
        self._on_change = on_change
        self.connected = False
        # Monotonic time the link was lost (or found down at start); None while connected.
        self.down_since: float | None = time.monotonic()
        self._lost_seen = False
        self.alerted = False
        self.armed_at: float | None = None
        self._alarm = MonotonicCall(hass, self._async_on_alarm, cancel_on_shutdown=True)
        self._unsub: CALLBACK_TYPE | None = None

    @callback
    def async_restore(self, down_since: float | None, alerted: bool) -> None:
        """Take back what a reload kept (monotonic times of this run): the link lost, the alarm."""
        self.down_since = down_since
        self._lost_seen = down_since is not None
        self.alerted = alerted and down_since is not None

    @callback
    def async_start(self) -> None:
        """Follow the connection signal and take the connection as it is now."""
        self._unsub = mqtt.async_subscribe_connection_status(self.hass, self._async_on_connection)
        connected = _connected_now(self.hass)
        if connected and not self.alerted:
            async_clear_broker_issue(self.hass)  # left by a run that stopped while it was lost
        self._set(connected, time.monotonic())

    @callback
    def async_arm(self, at: float) -> None:
        """Allow the alarm: a link lost since before `at` (monotonic) counts from `at`."""
        self.armed_at = at
        self._follow_alarm()

    @callback
    def async_stop(self) -> None:
        """Stop following; the repair issue stays for the reload that usually follows."""
        if self._unsub is not None:
            self._unsub()
            self._unsub = None
        self._alarm.cancel()

    def reasons(self, now: float) -> Texts:
        """Return the broker link's reason while it is lost for longer than `outage_alert`."""
        if not self.alerted:
            return Texts.from_list([])
        return Texts.from_list(
            [f"{BROKER_NAME}: Home Assistant disconnected for more than {self.outage_alert:g} s"]
        )

    @callback
    def _async_on_connection(self, connected: bool) -> None:
        """Follow a change of the connection."""
        self._set(connected, time.monotonic())
        self._on_change()

    def _set(self, connected: bool, now: float) -> None:
        """Note the connection's state; count a reconnect, end an alarm, arm the next one."""
        wall = time.time()
        self._uptime.set_broker(connected, now, wall)
        if connected == self.connected:
            return
        self.connected = connected
        if not connected:
            self.down_since = now
            self._lost_seen = True
        else:
            if self._lost_seen:
                self._uptime.ledger.count_reconnect(wall)
            if self.alerted:
                self._end_alarm(now)
            self.down_since = None
        LOGGER.debug("Broker link %s", "up" if connected else "lost")
        self._follow_alarm()

    def _follow_alarm(self) -> None:
        """Wake up when a lost link crosses `outage_alert`; nothing to wait for otherwise."""
        if self.down_since is None or self.armed_at is None or self.alerted:
            self._alarm.cancel()
            return
        self._alarm.schedule(max(self.down_since, self.armed_at) + self.outage_alert)

    @callback
    def _async_on_alarm(self, now: float) -> None:
        """The link has been lost for `outage_alert`: raise the alarm."""
        if self.down_since is None or self.alerted:
            return
        self.alerted = True
        async_raise_broker_issue(self.hass, self.outage_alert)
        self._on_change()

    def _end_alarm(self, now: float) -> None:
        """The link is back: clear the issue and say how long it was lost."""
        assert self.down_since is not None
        assert self.armed_at is not None
        self.alerted = False
        async_clear_broker_issue(self.hass)
        async_announce_outage_over(
            self.hass,
            BROKER_NAME,
            outage=OUTAGE_BROKER,
            lasted_s=now - max(self.down_since, self.armed_at),
        )
