"""The hub: ties the command tracker, statistics, monitors, storage and entities together."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import Any

from homeassistant.config_entries import ConfigEntry
from homeassistant.const import EVENT_HOMEASSISTANT_STOP
from homeassistant.core import CALLBACK_TYPE, Event, HomeAssistant, callback
from homeassistant.helpers.event import async_track_time_interval
from homeassistant.helpers.start import async_at_started
from homeassistant.helpers.storage import Store

from .agents import AgentMonitor
from .const import (
    EVENT_COMMAND,
    STORAGE_KEY,
    STORAGE_SAVE_DELAY,
    STORAGE_VERSION,
)
from .degradation import Degradation, statistics_reasons
from .models import HubOptions, HubSnapshot
from .outages import OutageMonitor
from .ranking import EntityFigures
from .staleness import StaleMonitor
from .statistics import BUCKET_SECONDS, WindowFigures, WindowStatistics
from .tracker import CommandOutcome, CommandTracker

WORST_OFFENDERS = 10
# Window figures, worst offenders, entities below the success target.
type _Figures = tuple[WindowFigures, list[EntityFigures], list[EntityFigures]]


class FarmResilienceHub:
    """Runtime data of the hub entry: measures commands, outages and staleness."""

    def __init__(self, hass: HomeAssistant, entry: ConfigEntry[Any]) -> None:
        """Build the parts from the entry's options; `async_setup` starts them."""
        self.hass = hass
        self.entry = entry
        self.options = options = HubOptions.from_options(entry.options)
        self.statistics = WindowStatistics(
            options.window_hours,
            min_samples=options.min_samples,
            success_target=options.success_target,
        )
        self.degradation = Degradation(hass)
        self.outages = OutageMonitor(hass, options.outage_alert, self.async_schedule_update)
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
        )
        self._store: Store[dict[str, Any]] = Store(hass, STORAGE_VERSION, STORAGE_KEY)
        self._listeners: list[CALLBACK_TYPE] = []
        self._unsubs: list[CALLBACK_TYPE] = []
        self._update_scheduled = False
        self._save_pending = False
        self._figures: _Figures = self._compute_figures(0.0)
        self.snapshot = HubSnapshot(self._figures[0], [], [], [], [])

    async def async_setup(self) -> None:
        """Load the stored window, then start following commands and health."""
        if (stored := await self._store.async_load()) is not None:
            self.statistics.load(stored, time.time())
        for provider in (
            self._statistics_reasons,
            self.outages.reasons,
            self.staleness.reasons,
            self.agents.reasons,
        ):
            self._unsubs.append(self.degradation.async_add_provider(provider))
        self.tracker.async_start()
        self.staleness.async_start()
        self.agents.async_start()
        self._unsubs += [
            async_at_started(self.hass, self._async_on_started),
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
        """Stop everything and write the window to storage now."""
        while self._unsubs:
            self._unsubs.pop()()
        self.tracker.async_stop()
        self.staleness.async_stop()
        self.outages.async_stop()
        self.agents.async_stop()
        self._update_scheduled = True  # no refresh after unload
        await self._store.async_save(self._stored_data())

    @callback
    def async_add_listener(self, update: CALLBACK_TYPE) -> CALLBACK_TYPE:
        """Call `update` whenever the snapshot changes; the returned callback stops it."""
        self._listeners.append(update)
        return lambda: self._listeners.remove(update)

    @callback
    def async_schedule_update(self) -> None:
        """Refresh the snapshot soon; a burst of outcomes yields one refresh."""
        if not self._update_scheduled:
            self._update_scheduled = True
            self.entry.async_create_task(
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
        self._store.async_delay_save(self._stored_data)
        self.async_schedule_update()

    @callback
    def _async_on_started(self, hass: HomeAssistant) -> None:
        """Arm the alarms once Home Assistant runs: start-up unavailability is no outage."""
        now = time.time()
        self.outages.async_arm(now)
        self.staleness.async_arm(now)
        self.agents.async_arm(now)
        self.async_schedule_update()

    @callback
    def _async_on_stop(self, event: Event) -> None:
        """Drop pending commands: an entity shutting down is not a failed command."""
        self.tracker.async_drop_pending()

    @callback
    def _async_on_tick(self, now: datetime) -> None:
        """Let old buckets leave the window even when no command arrives."""
        self.async_schedule_update()

    @callback
    def _async_on_outcome(self, outcome: CommandOutcome) -> None:
        """Count the outcome, announce it, and schedule a save and a refresh."""
        self.statistics.record(outcome.entity_id, outcome.outcome, outcome.latency_s, outcome.at)
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
        # Store.async_delay_save restarts its timer on every call: under steady traffic
        # the save would never come, so schedule one only when none is pending.
        if not self._save_pending:
            self._save_pending = True
            self._store.async_delay_save(self._stored_data, STORAGE_SAVE_DELAY)
        self.async_schedule_update()

    @callback
    def _async_update(self) -> None:
        """Recompute figures and reasons, then tell the entities."""
        self._update_scheduled = False
        now = time.time()
        self._figures = self._compute_figures(now)
        self.degradation.async_refresh(now)
        self.snapshot = HubSnapshot(
            figures=self._figures[0],
            worst_offenders=self._figures[1],
            outages=sorted(self.outages.outages.values()),
            stale_sensors=list(self.staleness.stale),
            reasons=list(self.degradation.reasons),
        )
        for update in list(self._listeners):
            update()

    def _compute_figures(self, now: float) -> _Figures:
        """Return the window figures, worst offenders and entities below target as of `now`."""
        return (
            self.statistics.figures(now),
            self.statistics.worst_offenders(now, WORST_OFFENDERS),
            self.statistics.below_target(now),
        )

    def _statistics_reasons(self, now: float) -> list[str]:
        """Reason provider for the command statistics."""
        return statistics_reasons(self._figures[0], self._figures[2], self.options)

    def _stored_data(self) -> dict[str, Any]:
        """Return what goes to storage: the window only, never pending commands."""
        self._save_pending = False
        return self.statistics.as_dict()
