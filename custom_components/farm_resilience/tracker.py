"""Command tracking: every controllable call_service becomes one outcome per device it reaches.

The tracker follows the entities, opens a pending command for each device a call
reaches (targets.py), judges it by the states that follow and ends it by its
deadline (pending.py). Successes are watched for a bounce (bounces.py), outcomes
go to whoever waits for them (waiters.py), availability flips to the outage
monitor (flips.py), and a reload hands all of it to the next tracker (handover.py).

Durations (latency, deadlines, the bounce window) run on the monotonic clock;
wall time only labels outcomes, so a clock stepped by NTP changes no figure.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from homeassistant.const import EVENT_CALL_SERVICE, STATE_UNAVAILABLE
from homeassistant.core import (
    CALLBACK_TYPE,
    Context,
    Event,
    EventStateChangedData,
    HomeAssistant,
    State,
    callback,
)
from homeassistant.helpers.event import (
    async_track_state_added_domain,
    async_track_state_change_event,
)

from .bounces import BounceWatch
from .commands import CommandOutcome, PendingCommand
from .const import (
    CONTROLLABLE_DOMAINS,
    OUTCOME_BOUNCED,
    OUTCOME_NOOP,
    OUTCOME_SUCCESS,
    OUTCOME_SUPERSEDED,
    OUTCOME_TIMEOUT,
    OUTCOME_UNAVAILABLE,
)
from .expectations import expect, is_understood
from .flips import Availability, AvailabilityFlips
from .handover import Handover, async_park, async_take
from .pending import PendingCommands
from .registry_follow import RegistryFollower
from .targets import followed_targets, is_controllable, transition_s
from .temperatures import temperature_scale
from .timing import EarliestCall
from .virtual import is_virtual, leaves
from .waiters import Waiters

# CommandOutcome is exported from here too: the hub imports it with the tracker.
__all__ = ["CommandOutcome", "CommandTracker"]


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
        self._flips = AvailabilityFlips(on_availability)
        self._on_renamed = on_renamed
        self.followed: set[str] = set()
        self.pending = PendingCommands()
        self._waiters = Waiters(hass)
        self._bounces = BounceWatch()
        self._sweep = EarliestCall(hass, self._async_sweep)
        self._registry = RegistryFollower(hass, self)
        self._unsubs: list[CALLBACK_TYPE] = []

    @callback
    def async_start(self) -> None:
        """Follow the tracked entities, listen to service calls, adopt a reload's commands."""
        self._unsubs.append(
            self.hass.bus.async_listen(
                EVENT_CALL_SERVICE, self._async_on_call_service, event_filter=is_controllable
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
            Handover(list(self.pending.values()), self._waiters, self._bounces),
        )
        self._waiters = Waiters(self.hass)  # the handed over ones are the next tracker's
        self._bounces = BounceWatch()
        self._async_clear()

    @callback
    def async_drop_pending(self) -> None:
        """Forget pending commands (Home Assistant is stopping: they cannot be judged)."""
        self._waiters.cancel_all()
        self._async_clear()

    @callback
    def _async_clear(self) -> None:
        """Forget every command, waiter and watch, without telling anyone."""
        self.pending.clear()
        self._sweep.cancel()
        self._waiters.clear()
        self._bounces.clear()

    @callback
    def _async_adopt(self, handover: Handover) -> None:
        """Take over a reloaded tracker's commands: judge each by its entity's state now.

        State changes during the reload were seen by nobody; the state now tells
        whether the command took effect meanwhile (latency counted up to now).
        """
        self._waiters.take_over(handover.waiters)
        now = time.monotonic()
        for command in handover.pending:
            if command.entity_id not in self.followed:
                self._async_forget(command)  # no longer tracked: no outcome
                continue
            self._async_pend(command)
            self._async_judge(command, self.hass.states.get(command.entity_id), now)
        self._bounces.take_over(handover.bounces, self.followed)

    @callback
    def async_wait_for(
        self, context: Context, entity_ids: Iterable[str], timeout: float
    ) -> dict[str, asyncio.Future[CommandOutcome]]:
        """Return futures for the outcomes of a call about to be made with `context`."""
        return self._waiters.expect(context, entity_ids, timeout)

    @callback
    def async_forget_waiters(self, context: Context) -> None:
        """Drop what `async_wait_for` set up for a call."""
        self._waiters.forget(context)

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
            self._flips.first_seen(entity_id, self.hass.states.get(entity_id))

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
        timeout = self._waiters.timeout(event.context.id, self.timeout)
        timeout += transition_s(domain, service_data)
        for entity_id in followed_targets(self.hass, domain, service_data, self.followed):
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

    @callback
    def _async_open(self, command: PendingCommand, state: State) -> None:
        """Replace any older command for the entity, then judge or wait."""
        previous = self.pending.pop(command.entity_id)
        if previous is not None:
            self._async_finish(previous, OUTCOME_SUPERSEDED)
        self._bounces.drop(command.entity_id)  # a new command is no bounce
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
        self._sweep.request(self.pending.add(command))

    @callback
    def _async_on_state_changed(self, event: Event[EventStateChangedData]) -> None:
        """Judge the entity's pending command, watch for a bounce, note availability flips."""
        data = event.data
        entity_id = data["entity_id"]
        new_state = data["new_state"]
        now = time.monotonic()
        if (command := self.pending.get(entity_id)) is not None:
            self._async_judge(command, new_state, now)
        elif (bounced := self._bounces.bounced(entity_id, new_state, now)) is not None:
            self._async_finish(bounced, OUTCOME_BOUNCED)
        self._flips.changed(entity_id, new_state, event.time_fired_timestamp)

    @callback
    def _async_judge(self, command: PendingCommand, state: State | None, now: float) -> None:
        """End a pending command whose entity went away or showed the expected result."""
        if now > command.deadline:
            # The sweep runs a moment late under load; a late result is still a timeout.
            self._async_sweep(now)
        elif state is None or state.state == STATE_UNAVAILABLE:
            self.pending.end(command)
            self._async_finish(command, OUTCOME_UNAVAILABLE)
        elif not command.expectation.is_met(state):
            command.left = True
        elif not command.replacing or command.left:
            self.pending.end(command)
            self._async_finish(command, OUTCOME_SUCCESS, now - command.started)
            self._bounces.watch(command, now)

    @callback
    def _async_sweep(self, now: float) -> None:
        """End every command past its deadline; ask to run again at the next deadline."""
        while (command := self.pending.expired(now)) is not None:
            self._async_finish(command, self._expired_outcome(command))
        if (deadline := self.pending.next_deadline()) is not None:
            self._sweep.request(deadline)

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
        self._waiters.resolve(result)

    @callback
    def _async_forget(self, command: PendingCommand) -> None:
        """End a command without an outcome; whoever waits for it is told it was cancelled."""
        self.pending.end(command)
        self._waiters.cancel(command.context.id, command.entity_id)

    @callback
    def async_entity_renamed(self, old: str, new: str) -> None:
        """Keep following a renamed entity, with its pending command and bounce watch."""
        if old not in self.followed:
            return
        self.followed.discard(old)  # its removal still reaches us, for the outage monitor
        self._tracked = [new if entity_id == old else entity_id for entity_id in self._tracked]
        if (command := self.pending.rename(old, new)) is not None:
            self._waiters.rename(command.context.id, old, new)
        self._bounces.rename(old, new)
        self._async_follow((new,))
        self._on_renamed(old, new)

    @callback
    def async_entity_disabled(self, entity_id: str) -> None:
        """End a disabled entity's pending command without an outcome: it failed nothing."""
        self._bounces.drop(entity_id)
        if (command := self.pending.get(entity_id)) is not None:
            self._async_forget(command)
