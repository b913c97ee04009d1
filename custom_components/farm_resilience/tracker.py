"""Command tracking: every controllable call_service becomes one outcome per device it reaches.

Durations (latency, deadlines, the bounce window) run on the monotonic clock;
wall time only labels outcomes, so a clock stepped by NTP changes no figure.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from homeassistant.const import (
    ATTR_ENTITY_ID,
    ENTITY_MATCH_ALL,
    EVENT_CALL_SERVICE,
    STATE_UNAVAILABLE,
)
from homeassistant.core import (
    CALLBACK_TYPE,
    Context,
    Event,
    EventStateChangedData,
    HomeAssistant,
    ServiceCall,
    State,
    callback,
)
from homeassistant.helpers.event import (
    async_track_state_added_domain,
    async_track_state_change_event,
)
from homeassistant.helpers.service import async_extract_referenced_entity_ids

from .commands import CommandOutcome, PendingCommand, Settling
from .const import (
    BOUNCE_WINDOW_S,
    CONTROLLABLE_DOMAINS,
    OUTCOME_BOUNCED,
    OUTCOME_NOOP,
    OUTCOME_SUCCESS,
    OUTCOME_SUPERSEDED,
    OUTCOME_TIMEOUT,
    OUTCOME_UNAVAILABLE,
)
from .expectations import expect, is_understood
from .handover import Handover, async_park, async_take
from .registry_follow import RegistryFollower
from .temperatures import temperature_scale
from .timing import EarliestCall
from .virtual import is_virtual, leaves

# CommandOutcome is exported from here too: the hub imports it with the tracker.
__all__ = ["CommandOutcome", "CommandTracker"]

# Status of an entity that is not up: True = unavailable, None = no state at all.
type Availability = Callable[[str, bool | None, float], None]


@callback
def _is_controllable(event_data: Mapping[str, Any]) -> bool:
    """Let through only calls to controllable domains: a frozenset lookup per call."""
    return event_data["domain"] in CONTROLLABLE_DOMAINS


def _target_data(service_data: Mapping[str, Any]) -> dict[str, Any]:
    """Return the call's data with a comma-separated entity_id string split into a list."""
    entity_ids = service_data.get(ATTR_ENTITY_ID)
    if isinstance(entity_ids, str) and "," in entity_ids:
        return {**service_data, ATTR_ENTITY_ID: [e.strip() for e in entity_ids.split(",")]}
    return dict(service_data)


def _transition_s(domain: str, service_data: Mapping[str, Any]) -> float:
    """Return how long a light may take on purpose (its `transition`), 0 for anything else."""
    transition = service_data.get("transition") if domain == "light" else None
    if isinstance(transition, int | float) and not isinstance(transition, bool):
        return max(0.0, float(transition))
    return 0.0


class CommandTracker:
    """Turns service calls into pending commands and state changes into outcomes."""

    def __init__(
        self,
        hass: HomeAssistant,
        *,
        timeout: float,
        tracked_entities: Iterable[str],
        on_outcome: Callable[[CommandOutcome], None],
        on_availability: Availability,
        on_renamed: Callable[[str, str], None] = lambda old, new: None,
    ) -> None:
        """Prepare a tracker; `async_start` subscribes."""
        self.hass = hass
        self.timeout = timeout
        self._tracked = list(tracked_entities)
        self._on_outcome = on_outcome
        self._on_availability = on_availability
        self._on_renamed = on_renamed
        self.followed: set[str] = set()
        self.pending: dict[str, PendingCommand] = {}
        # Deadlines in a heap, so the sweep looks only at what is due. An entry whose
        # command has ended stays until its deadline comes up: at most one per command.
        self._deadlines: list[tuple[float, int, PendingCommand]] = []
        self._order = itertools.count()
        self._not_up: dict[str, bool | None] = {}
        self._timeouts: dict[str, float] = {}
        self._waiters: dict[tuple[str, str], asyncio.Future[CommandOutcome]] = {}
        # At most one per entity; an expired one is dropped when its entity next changes.
        self._settling: dict[str, Settling] = {}
        self._sweep = EarliestCall(hass, self._async_sweep)
        self._registry = RegistryFollower(hass, self)
        self._unsubs: list[CALLBACK_TYPE] = []

    @callback
    def async_start(self) -> None:
        """Follow the tracked entities, listen to service calls, adopt a reload's commands."""
        self._unsubs.append(
            self.hass.bus.async_listen(
                EVENT_CALL_SERVICE, self._async_on_call_service, event_filter=_is_controllable
            )
        )
        self._unsubs.append(self._registry.async_start())
        if self._tracked:
            self._async_follow(self._tracked)
            for entity_id in self._tracked:  # the devices behind a tracked group
                self._async_follow(leaves(self.hass, entity_id))
        else:
            # Empty list: every controllable entity, including ones added later.
            self._async_follow(self.hass.states.async_entity_ids(CONTROLLABLE_DOMAINS))
            self._unsubs.append(
                async_track_state_added_domain(
                    self.hass, CONTROLLABLE_DOMAINS, self._async_on_entity_added
                )
            )
        if (handover := async_take(self.hass)) is not None:
            self._async_adopt(handover)

    @callback
    def async_stop(self) -> None:
        """Stop listening; hand commands in flight to the next tracker (a reload)."""
        while self._unsubs:
            self._unsubs.pop()()
        if self.hass.is_stopping:
            self.async_drop_pending()
            return
        async_park(
            self.hass,
            Handover(
                pending=list(self.pending.values()),
                waiters=dict(self._waiters),
                timeouts=dict(self._timeouts),
                settling=dict(self._settling),
            ),
        )
        self._async_clear()

    @callback
    def async_drop_pending(self) -> None:
        """Forget pending commands (Home Assistant is stopping: they cannot be judged)."""
        for waiter in self._waiters.values():
            waiter.cancel()
        self._async_clear()

    @callback
    def _async_clear(self) -> None:
        """Forget every command, waiter and watch, without telling anyone."""
        self.pending.clear()
        self._deadlines.clear()
        self._sweep.cancel()
        self._waiters.clear()
        self._timeouts.clear()
        self._settling.clear()

    @callback
    def _async_adopt(self, handover: Handover) -> None:
        """Take over a reloaded tracker's commands: judge each by its entity's state now.

        State changes during the reload were seen by nobody; the state now tells
        whether the command took effect meanwhile (latency counted up to now).
        """
        self._waiters.update(handover.waiters)
        self._timeouts.update(handover.timeouts)
        now = time.monotonic()
        for command in handover.pending:
            if command.entity_id not in self.followed:
                self._async_forget(command)  # no longer tracked: no outcome
                continue
            self._async_pend(command)
            self._async_judge(command, self.hass.states.get(command.entity_id), now)
        for entity_id, watch in handover.settling.items():
            if entity_id in self.followed:
                self._settling[entity_id] = watch

    @callback
    def async_wait_for(
        self, context: Context, entity_ids: Iterable[str], timeout: float
    ) -> dict[str, asyncio.Future[CommandOutcome]]:
        """Return futures for the outcomes of a call about to be made with `context`."""
        self._timeouts[context.id] = timeout
        futures: dict[str, asyncio.Future[CommandOutcome]] = {}
        for entity_id in entity_ids:
            futures[entity_id] = self.hass.loop.create_future()
            self._waiters[(context.id, entity_id)] = futures[entity_id]
        return futures

    @callback
    def async_forget_waiters(self, context: Context) -> None:
        """Drop what `async_wait_for` set up for a call."""
        self._timeouts.pop(context.id, None)
        for key in [key for key in self._waiters if key[0] == context.id]:
            self._waiters.pop(key).cancel()

    @callback
    def _async_follow(self, entity_ids: Iterable[str]) -> None:
        """Follow state changes of entities not followed yet (one subscription per batch)."""
        new = [entity_id for entity_id in entity_ids if entity_id not in self.followed]
        if not new:
            return
        self.followed.update(new)
        self._unsubs.append(
            async_track_state_change_event(self.hass, new, self._async_on_state_changed)
        )
        for entity_id in new:
            state = self.hass.states.get(entity_id)
            status = None if state is None else state.state == STATE_UNAVAILABLE
            if status is not False:
                self._not_up[entity_id] = status
            self._on_availability(entity_id, status, state.last_updated_timestamp if state else 0)

    @callback
    def _async_on_entity_added(self, event: Event[EventStateChangedData]) -> None:
        """Follow an entity of a controllable domain that appeared after set-up."""
        self._async_follow((event.data["entity_id"],))

    @callback
    def _async_on_call_service(self, event: Event[Mapping[str, Any]]) -> None:
        """Open a pending command for every followed device the call targets."""
        domain: str = event.data["domain"]
        service: str = event.data["service"]
        if not is_understood(domain, service):
            return
        service_data: Mapping[str, Any] = event.data.get("service_data") or {}
        now = time.monotonic()
        timeout = self._timeouts.pop(event.context.id, self.timeout)
        timeout += _transition_s(domain, service_data)
        for entity_id in self._targets(domain, service_data):
            if is_virtual(self.hass, entity_id):
                # Its members get the command in a nested call with this context: they
                # are the devices, and counted there (followed even if not listed).
                self._async_follow(leaves(self.hass, entity_id))
                continue
            # A followed entity without a state has been removed: judged as unavailable.
            state = self.hass.states.get(entity_id) or State(entity_id, STATE_UNAVAILABLE)
            scale = temperature_scale(self.hass, entity_id)
            expectation = expect(domain, service, service_data, state, scale)
            if expectation is None or expectation.refused:
                continue  # not understood, or Home Assistant will not send it
            command = PendingCommand(
                entity_id,
                domain,
                service,
                expectation,
                called_at=time.time(),
                started=now,
                deadline=now + timeout,
                context=event.context,
            )
            self._async_open(command, state)

    def _targets(self, domain: str, service_data: Mapping[str, Any]) -> set[str]:
        """Resolve entity, device, area, floor and label targets to followed entities."""
        data = _target_data(service_data)
        prefix = f"{domain}."
        if data.get(ATTR_ENTITY_ID) == ENTITY_MATCH_ALL:
            return {e for e in self.followed if e.startswith(prefix)}
        selected = async_extract_referenced_entity_ids(
            self.hass, ServiceCall(self.hass, domain, "", data)
        )
        entity_ids = selected.referenced | selected.indirectly_referenced
        return {e for e in entity_ids if e.startswith(prefix) and e in self.followed}

    @callback
    def _async_open(self, command: PendingCommand, state: State) -> None:
        """Replace any older command for the entity, then judge or wait."""
        previous = self.pending.pop(command.entity_id, None)
        if previous is not None:
            self._async_finish(previous, OUTCOME_SUPERSEDED)
        self._settling.pop(command.entity_id, None)  # a new command is no bounce
        if command.expectation.stops:
            return
        if state.state == STATE_UNAVAILABLE:
            self._async_finish(command, OUTCOME_UNAVAILABLE)
        elif not command.expectation.is_met(state):
            self._async_pend(command)
        elif previous is None:
            self._async_finish(command, OUTCOME_NOOP)
        else:
            # The state shows what the earlier command left; it may be about to change.
            command.replacing = True
            self._async_pend(command)

    @callback
    def _async_pend(self, command: PendingCommand) -> None:
        """Wait for the command's result until its deadline."""
        self.pending[command.entity_id] = command
        heapq.heappush(self._deadlines, (command.deadline, next(self._order), command))
        self._sweep.request(command.deadline)

    @callback
    def _async_on_state_changed(self, event: Event[EventStateChangedData]) -> None:
        """Judge the entity's pending command, watch for a bounce, note availability flips."""
        data = event.data
        entity_id = data["entity_id"]
        new_state = data["new_state"]
        if (command := self.pending.get(entity_id)) is not None:
            self._async_judge(command, new_state, time.monotonic())
        elif entity_id in self._settling:
            self._async_watch_bounce(entity_id, new_state, time.monotonic())
        status = None if new_state is None else new_state.state == STATE_UNAVAILABLE
        if status is not self._not_up.get(entity_id, False):
            if status is False:
                del self._not_up[entity_id]
            else:
                self._not_up[entity_id] = status
            self._on_availability(entity_id, status, event.time_fired_timestamp)

    @callback
    def _async_judge(self, command: PendingCommand, state: State | None, now: float) -> None:
        """End a pending command whose entity went away or showed the expected result."""
        if now > command.deadline:
            # The sweep runs a moment late under load; a late result is still a timeout.
            self._async_sweep(now)
        elif state is None or state.state == STATE_UNAVAILABLE:
            del self.pending[command.entity_id]
            self._async_finish(command, OUTCOME_UNAVAILABLE)
        elif not command.expectation.is_met(state):
            command.left = True
        elif not command.replacing or command.left:
            del self.pending[command.entity_id]
            self._async_finish(command, OUTCOME_SUCCESS, now - command.started)
            self._settling[command.entity_id] = Settling(command, now + BOUNCE_WINDOW_S)

    @callback
    def _async_watch_bounce(self, entity_id: str, state: State | None, now: float) -> None:
        """Report a success that the entity undid by itself within the bounce window."""
        watch = self._settling[entity_id]
        if now > watch.until or state is None or state.state == STATE_UNAVAILABLE:
            del self._settling[entity_id]  # settled, or an outage (counted as such)
        elif not watch.command.expectation.is_met(state):
            del self._settling[entity_id]
            self._async_finish(watch.command, OUTCOME_BOUNCED)

    @callback
    def _async_sweep(self, now: float) -> None:
        """End every command past its deadline; ask to run again at the next deadline."""
        deadlines = self._deadlines
        while deadlines and deadlines[0][0] <= now:
            command = heapq.heappop(deadlines)[2]
            if self.pending.get(command.entity_id) is command:
                del self.pending[command.entity_id]
                self._async_finish(command, self._expired_outcome(command))
        # Entries of commands that ended otherwise need no wake-up of their own.
        while deadlines and self.pending.get(deadlines[0][2].entity_id) is not deadlines[0][2]:
            heapq.heappop(deadlines)
        if deadlines:
            self._sweep.request(deadlines[0][0])

    def _expired_outcome(self, command: PendingCommand) -> str:
        """Timeout, unless a replacing command's entity never left the result it asked for."""
        if command.replacing and not command.left:
            state = self.hass.states.get(command.entity_id)
            if state is not None and command.expectation.is_met(state):
                return OUTCOME_NOOP  # nothing followed: the entity was as asked all along
        return OUTCOME_TIMEOUT

    @callback
    def _async_finish(
        self, command: PendingCommand, outcome: str, latency_s: float | None = None
    ) -> None:
        """Report an outcome and wake whoever waits for it."""
        result = CommandOutcome(
            command.entity_id,
            command.domain,
            command.service,
            outcome,
            latency_s,
            command.context,
            time.time(),
        )
        self._on_outcome(result)
        waiter = self._waiters.pop((command.context.id, command.entity_id), None)
        if waiter is not None and not waiter.done():
            waiter.set_result(result)

    @callback
    def _async_forget(self, command: PendingCommand) -> None:
        """End a command without an outcome; whoever waits for it is told it was cancelled."""
        if self.pending.get(command.entity_id) is command:
            del self.pending[command.entity_id]
        if (waiter := self._waiters.pop((command.context.id, command.entity_id), None)) is not None:
            waiter.cancel()

    @callback
    def async_entity_renamed(self, old: str, new: str) -> None:
        """Keep following a renamed entity, with its pending command and bounce watch."""
        if old not in self.followed:
            return
        self.followed.discard(old)  # its removal still reaches us, for the outage monitor
        self._tracked = [new if entity_id == old else entity_id for entity_id in self._tracked]
        if (command := self.pending.pop(old, None)) is not None:
            if (waiter := self._waiters.pop((command.context.id, old), None)) is not None:
                self._waiters[(command.context.id, new)] = waiter
            command.entity_id = new
            self.pending[new] = command
        if (watch := self._settling.pop(old, None)) is not None:
            watch.command.entity_id = new
            self._settling[new] = watch
        self._async_follow((new,))
        self._on_renamed(old, new)

    @callback
    def async_entity_disabled(self, entity_id: str) -> None:
        """End a disabled entity's pending command without an outcome: it failed nothing."""
        self._settling.pop(entity_id, None)
        if (command := self.pending.get(entity_id)) is not None:
            self._async_forget(command)
