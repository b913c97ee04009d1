"""The hub: ties the command tracker, statistics, monitors, storage and entities together.

A push coordinator: commands, outages, stale sensors and agents change its
snapshot (`HubSnapshot`), which it hands to the entities with `async_set_updated_data`.
"""

from __future__ import annotations

import math
import time
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from homeassistant.const import EVENT_HOMEASSISTANT_STOP
from homeassistant.core import CALLBACK_TYPE, CoreState, Event, HomeAssistant, callback
from homeassistant.helpers.device_registry import DeviceEntryType, DeviceInfo
from homeassistant.helpers.event import async_track_time_interval
from homeassistant.helpers.start import async_at_started
from homeassistant.helpers.update_coordinator import DataUpdateCoordinator

from .agents import AgentMonitor
from .bounds import Texts
from .broker import BrokerLink, broker_followed
from .burn import BurnWindows
from .const import (
    COUNTED_OUTCOMES,
    DOMAIN,
    EVENT_COMMAND,
    HUB_NAME,
    LOGGER,
    OUTCOME_SUCCESS,
    STORAGE_KEY,
    STORAGE_SAVE_DELAY,
    STORAGE_VERSION,
)
from .degradation import Degradation, statistics_reasons
from .devices import DeviceRecord
from .hub_storage import RUN, async_load_hub, hub_data
from .issues import async_clear_device_issues
from .models import BrokerFigures, HubOptions, HubSnapshot, UptimeFigures
from .outages import OutageMonitor
from .ranking import EntityFigures
from .slo import CommandSlo, command_slo
from .staleness import StaleMonitor
from .statistics import BUCKET_SECONDS, WindowFigures, WindowStatistics
from .storage import (
    STORAGE_MINOR_VERSION,
    HubStore,
    StoredMonitors,
)
from .timing import EarliestCall
from .tracker import CommandOutcome, CommandTracker
from .uptime import UptimeMonitor

if TYPE_CHECKING:
    from .entries import HubConfigEntry

WORST_OFFENDERS = 10
# Devices are ranked by availability this long after one goes down or comes back.
UPTIME_REFRESH_DELAY_S = 10.0
# Window figures, worst offenders, entities below the success target, the objective.
type _Figures = tuple[WindowFigures, list[EntityFigures], list[EntityFigures], CommandSlo]


class FarmResilienceHub(DataUpdateCoordinator[HubSnapshot]):
    """Runtime data of the hub entry: measures commands, outages and staleness."""

    config_entry: HubConfigEntry

    def __init__(self, hass: HomeAssistant, entry: HubConfigEntry) -> None:
        """Build the parts from the entry's options; `async_setup` starts them."""
        super().__init__(hass, LOGGER, config_entry=entry, name=HUB_NAME)
        self.unique_id_prefix = entry.entry_id
        self.device_info = DeviceInfo(
            identifiers={(DOMAIN, entry.entry_id)},
            name=HUB_NAME,
            manufacturer=HUB_NAME,
            model="Hub",
            entry_type=DeviceEntryType.SERVICE,
        )
        self.options = options = HubOptions.from_options(entry.options)
        self.statistics = WindowStatistics(
            options.window_hours,
            min_samples=options.min_samples,
            success_target=options.success_target,
        )
        self.burn = BurnWindows()
        self.degradation = Degradation(hass)
        self.uptime = UptimeMonitor(options.window_hours * 3600)
        self._uptime_refresh = EarliestCall(hass, self._async_refresh_uptime)
        self.outages = OutageMonitor(
            hass, options.outage_alert, self.async_schedule_update, self._async_on_device
        )
        # Without Home Assistant's MQTT integration there is no broker link to follow.
        self.broker = (
            BrokerLink(hass, options.outage_alert, self.uptime, self.async_schedule_update)
            if broker_followed(hass)
            else None
        )
        self.staleness = StaleMonitor(
            hass, options.monitored_sensors, options.stale_after, self.async_schedule_update
        )
        self.agents = AgentMonitor(hass, options.outage_alert, self.async_schedule_update)
        self.tracker = CommandTracker(
            hass,
            timeout=options.command_timeout,
            tracked_entities=options.tracked_entities,
            on_outcome=self._async_on_outcome,
            on_availability=self.outages.async_set_availability,
            on_renamed=self._async_on_renamed,
        )
        self._store = HubStore(
            hass, STORAGE_VERSION, STORAGE_KEY, minor_version=STORAGE_MINOR_VERSION
        )
        self._unsubs: list[CALLBACK_TYPE] = []
        self._update_scheduled = False
        self._save_pending = False
        self._figures: _Figures = self._compute_figures(0.0)
        self.data = HubSnapshot(
            figures=self._figures[0],
            slo=self._figures[3],
            worst_offenders=[],
            outages=[],
            flaps={},
            stale_sensors=[],
            uptime=UptimeFigures(None, 0, []),
            broker=None,
            reasons=[],
        )

    async def async_setup(self) -> None:
        """Load the stored window, then start following commands and health.

        Home Assistant starting: the monitors arm once it has started (entities coming
        up late are no outage). A reload (HA running): they go on from what was kept.
        """
        monitors = await self._async_load()
        if self.hass.state is not CoreState.running or (monitors and monitors.run != RUN):
            monitors = None  # kept by another run: its monotonic times mean nothing now
        for provider in (
            self._statistics_reasons,
            self.outages.reasons,
            self.staleness.reasons,
            # The lost broker first: it is why the agents are unreachable.
            *([] if self.broker is None else [self.broker.reasons]),
            self.agents.reasons,
        ):
            self._unsubs.append(self.degradation.async_add_provider(provider))
        if self.hass.state is CoreState.running:
            # Set up while Home Assistant runs: no start-up grace, or the one kept.
            at = -math.inf if monitors is None or monitors.armed_at is None else monitors.armed_at
            self.degradation.is_degraded = monitors is not None and monitors.degraded
            self.outages.async_restore({} if monitors is None else monitors.devices)
            self.outages.async_arm(at)
            if self.broker is not None and monitors is not None:
                self.broker.async_restore(monitors.broker_down_since, monitors.broker_alerted)
        self.tracker.async_start()
        self.outages.async_settle()
        self.staleness.async_start()
        self.agents.async_start()
        if self.broker is not None:
            self.broker.async_start()
        if self.hass.state is CoreState.running:
            self.staleness.async_arm(at, None if monitors is None else monitors.last_report)
            self.agents.async_arm(at)
            self._arm_uptime(at)
        else:
            self._unsubs.append(async_at_started(self.hass, self._async_on_started))
        self._unsubs += [
            self.hass.bus.async_listen(EVENT_HOMEASSISTANT_STOP, self._async_on_stop),
            async_track_time_interval(
                self.hass,
                self._async_on_tick,
                timedelta(seconds=BUCKET_SECONDS),
                cancel_on_shutdown=True,
            ),
        ]
        self._async_update()

    async def async_unload(self) -> None:
        """Stop everything and write the window and the monitors to storage now.

        Repair issues stay open for the reload that usually follows; a disabled hub
        watches nothing, so it leaves none open.
        """
        if self.config_entry.disabled_by is not None:
            async_clear_device_issues(self.hass)
        while self._unsubs:
            self._unsubs.pop()()
        self.tracker.async_stop()
        self.staleness.async_stop()
        self.outages.async_stop()
        self.agents.async_stop()
        if self.broker is not None:
            self.broker.async_stop()
        self._uptime_refresh.cancel()
        self._update_scheduled = True  # no refresh after unload
        await self._store.async_save(self._stored_data())

    @callback
    def async_schedule_update(self) -> None:
        """Refresh the snapshot soon; a burst of outcomes yields one refresh.

        Hand-made rather than the coordinator's `async_request_refresh`: its
        debouncer runs the first call of a burst at once and holds the rest for a
        cooldown, while what is wanted is one refresh right after the burst (all
        outcomes of one loop iteration), which one task scheduled once gives.
        """
        if not self._update_scheduled:
            self._update_scheduled = True
            self.config_entry.async_create_task(
                self.hass, self._async_update_soon(), "farm_resilience update", eager_start=False
            )

    async def _async_update_soon(self) -> None:
        """Run the refresh that `async_schedule_update` asked for."""
        if self._update_scheduled:
            self._async_update()

    @callback
    def async_reset_statistics(self) -> None:
        """Forget the window's figures and store the empty window."""
        self.statistics.reset()
        self.burn.reset()
        self._store.async_delay_save(self._stored_data)
        self.async_schedule_update()

    async def _async_load(self) -> StoredMonitors | None:
        """Load the stored window and history (hub_storage.py); the monitors a reload kept."""
        return await async_load_hub(self, self._store)

    @callback
    def _async_on_started(self, hass: HomeAssistant) -> None:
        """Arm the alarms once Home Assistant runs: start-up unavailability is no outage."""
        now = time.monotonic()
        self.outages.async_arm(now)
        self.staleness.async_arm(now)
        self.agents.async_arm(now)
        self._arm_uptime(now)
        self.async_schedule_update()

    @callback
    def _arm_uptime(self, at: float) -> None:
        """Start counting uptime (from now: time before this run watched counts neither way)."""
        now = time.monotonic()
        self.uptime.arm(now)
        if self.broker is not None:
            self.broker.async_arm(at)
        self.uptime.refresh_devices(now, time.time())

    @callback
    def _async_on_device(self, key: str, device: DeviceRecord) -> None:
        """Follow a device's state in the uptime figures; rank the devices again soon."""
        now = time.monotonic()
        changed = self.uptime.set_device(
            key,
            device.name,
            watched=bool(device.entities),
            down=device.is_down,
            now=now,
            wall=time.time(),
        )
        if changed and self.uptime.armed:
            self._uptime_refresh.request(now + UPTIME_REFRESH_DELAY_S)

    @callback
    def _async_refresh_uptime(self, now: float) -> None:
        """Rank the devices by availability (all changes of a burst at once)."""
        self.uptime.refresh_devices(now, time.time())
        self.async_schedule_update()

    @callback
    def _async_on_stop(self, event: Event) -> None:
        """Drop pending commands (an entity shutting down is not a failed command); save."""
        self.tracker.async_drop_pending()
        self._store.async_delay_save(self._stored_data)

    @callback
    def _async_on_tick(self, now: datetime) -> None:
        """Let old buckets leave the window even when no command arrives; rank the devices."""
        self.uptime.refresh_devices(time.monotonic(), time.time())
        self.async_schedule_update()

    @callback
    def _async_on_outcome(self, outcome: CommandOutcome) -> None:
        """Count the outcome, announce it, and schedule a save and a refresh."""
        self.statistics.record(outcome.entity_id, outcome.outcome, outcome.latency_s, outcome.at)
        if outcome.outcome in COUNTED_OUTCOMES:
            self.burn.record(outcome.outcome != OUTCOME_SUCCESS, outcome.at)
        self.hass.bus.async_fire(
            EVENT_COMMAND,
            {
                "entity_id": outcome.entity_id,
                "domain": outcome.domain,
                "service": outcome.service,
                "outcome": outcome.outcome,
                "latency_s": outcome.latency_s,
                "context_id": outcome.context.id,
            },
            context=outcome.context,
        )
        self._async_save_soon()

    @callback
    def _async_on_renamed(self, old: str, new: str) -> None:
        """Keep a renamed entity's figures in the window under its new id."""
        self.statistics.rename_entity(old, new)
        self._async_save_soon()

    @callback
    def _async_save_soon(self) -> None:
        """Schedule a save of the window and a refresh of the entities."""
        # Store.async_delay_save restarts its timer on every call: under steady traffic
        # the save would never come, so schedule one only when none is pending.
        if not self._save_pending:
            self._save_pending = True
            self._store.async_delay_save(self._stored_data, STORAGE_SAVE_DELAY)
        self.async_schedule_update()

    @callback
    def _async_update(self) -> None:
        """Recompute figures and reasons, then hand the snapshot to the entities."""
        self._update_scheduled = False
        now, wall = time.monotonic(), time.time()
        self._figures = self._compute_figures(wall)
        self.degradation.async_refresh(now)
        self.async_set_updated_data(
            HubSnapshot(
                figures=self._figures[0],
                slo=self._figures[3],
                worst_offenders=self._figures[1],
                outages=sorted(self.outages.outages.values()),
                flaps=self.outages.flaps(now),
                stale_sensors=list(self.staleness.stale),
                uptime=UptimeFigures(
                    self.uptime.fleet_pct(now, wall),
                    self.uptime.watched_devices(),
                    list(self.uptime.worst),
                ),
                broker=None
                if self.broker is None
                else BrokerFigures(
                    self.broker.connected,
                    self.uptime.broker_pct(now, wall),
                    self.uptime.reconnects(wall),
                ),
                reasons=list(self.degradation.reasons),
            )
        )

    def _compute_figures(self, now: float) -> _Figures:
        """Return the window figures, offenders, entities below target, objective as of `now`."""
        figures = self.statistics.figures(now)
        slo = command_slo(
            figures,
            self.burn.counts(now),
            target_pct=self.options.success_target,
            min_samples=self.options.min_samples,
        )
        return (
            figures,
            self.statistics.worst_offenders(now, WORST_OFFENDERS),
            self.statistics.below_target(now),
            slo,
        )

    def _statistics_reasons(self, now: float) -> Texts:
        """Reason provider for the command statistics."""
        figures, _, below, slo = self._figures
        return statistics_reasons(figures, slo, below, self.options)

    def _stored_data(self) -> dict[str, Any]:
        """Return what goes to storage (hub_storage.py); no save is pending any more."""
        self._save_pending = False
        return hub_data(self)
