"""Command tracking: every controllable call_service becomes one outcome per target entity."""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
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

from .const import (
    CONTROLLABLE_DOMAINS,
    OUTCOME_NOOP,
    OUTCOME_SUCCESS,
    OUTCOME_SUPERSEDED,
    OUTCOME_TIMEOUT,
    OUTCOME_UNAVAILABLE,
)
from .expectations import Expectation, expect, is_understood
from .timing import EarliestCall

# Status of an entity that is not up: True = unavailable, None = no state at all.
type Availability = Callable[[str, bool | None, float], None]


@dataclass(slots=True)
class PendingCommand:
    """A command waiting for its entity to show the expected result."""

    entity_id: str
    domain: str
    service: str
    expectation: Expectation
    called_at: float
    deadline: float
    context: Context


@dataclass(frozen=True, slots=True)
class CommandOutcome:
    """How one command to one entity ended."""

    entity_id: str
    domain: str
    service: str
    outcome: str
    latency_s: float | None
    context: Context
    at: float


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
    ) -> None:
        """Prepare a tracker; `async_start` subscribes."""
        self.hass = hass
        self.timeout = timeout
        self._tracked = list(tracked_entities)
        self._on_outcome = on_outcome
        self._on_availability = on_availability
        self.followed: set[str] = set()
        self.pending: dict[str, PendingCommand] = {}
        # Deadlines in a heap, so the sweep looks only at what is due. An entry whose
        # command has ended stays until its deadline comes up: at most one per command.
        self._deadlines: list[tuple[float, int, PendingCommand]] = []
        self._order = itertools.count()
        self._not_up: dict[str, bool | None] = {}
        self._timeouts: dict[str, float] = {}
        self._waiters: dict[tuple[str, str], asyncio.Future[CommandOutcome]] = {}
        self._sweep = EarliestCall(hass, self._async_sweep)
        self._unsubs: list[CALLBACK_TYPE] = []

    @callback
    def async_start(self) -> None:
        """Follow the tracked entities and listen to service calls."""
        self._unsubs.append(
            self.hass.bus.async_listen(
                EVENT_CALL_SERVICE, self._async_on_call_service, event_filter=_is_controllable
            )
        )
        if self._tracked:
            self._async_follow(self._tracked)
            return
        # Empty list: every controllable entity, including ones added later.
        self._async_follow(self.hass.states.async_entity_ids(CONTROLLABLE_DOMAINS))
        self._unsubs.append(
            async_track_state_added_domain(
                self.hass, CONTROLLABLE_DOMAINS, self._async_on_entity_added
            )
        )

    @callback
    def async_stop(self) -> None:
        """Stop listening and drop pending commands without an outcome."""
        while self._unsubs:
            self._unsubs.pop()()
        self.async_drop_pending()

    @callback
    def async_drop_pending(self) -> None:
        """Forget pending commands (Home Assistant is stopping: they cannot be judged)."""
        self.pending.clear()
        self._deadlines.clear()
        self._sweep.cancel()
        for waiter in self._waiters.values():
            waiter.cancel()
        self._waiters.clear()

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
        """Open a pending command for every followed entity the call targets."""
        domain: str = event.data["domain"]
        service: str = event.data["service"]
        if not is_understood(domain, service):
            return
        service_data: Mapping[str, Any] = event.data.get("service_data") or {}
        now = event.time_fired_timestamp
        timeout = self._timeouts.pop(event.context.id, self.timeout)
        for entity_id in self._targets(domain, service_data):
            # A followed entity without a state has been removed: judged as unavailable.
            state = self.hass.states.get(entity_id) or State(entity_id, STATE_UNAVAILABLE)
            if (expectation := expect(domain, service, service_data, state)) is None:
                continue
            command = PendingCommand(
                entity_id, domain, service, expectation, now, now + timeout, event.context
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
        if (previous := self.pending.pop(command.entity_id, None)) is not None:
            self._async_finish(previous, OUTCOME_SUPERSEDED, command.called_at)
        if command.expectation.stops:
            return
        if state.state == STATE_UNAVAILABLE:
            self._async_finish(command, OUTCOME_UNAVAILABLE, command.called_at)
        elif command.expectation.is_met(state):
            self._async_finish(command, OUTCOME_NOOP, command.called_at)
        else:
            self.pending[command.entity_id] = command
            heapq.heappush(self._deadlines, (command.deadline, next(self._order), command))
            self._sweep.request(command.deadline)

    @callback
    def _async_on_state_changed(self, event: Event[EventStateChangedData]) -> None:
        """Judge the entity's pending command, if any, and note availability flips."""
        data = event.data
        entity_id = data["entity_id"]
        new_state = data["new_state"]
        if (command := self.pending.get(entity_id)) is not None:
            self._async_judge(command, new_state, event.time_fired_timestamp)
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
            self._async_finish(command, OUTCOME_UNAVAILABLE, now)
        elif command.expectation.is_met(state):
            del self.pending[command.entity_id]
            self._async_finish(command, OUTCOME_SUCCESS, now, now - command.called_at)

    @callback
    def _async_sweep(self, now: float) -> None:
        """Time out every command past its deadline; ask to run again at the next deadline."""
        deadlines = self._deadlines
        while deadlines and deadlines[0][0] <= now:
            command = heapq.heappop(deadlines)[2]
            if self.pending.get(command.entity_id) is command:
                del self.pending[command.entity_id]
                self._async_finish(command, OUTCOME_TIMEOUT, now)
        # Entries of commands that ended otherwise need no wake-up of their own.
        while deadlines and self.pending.get(deadlines[0][2].entity_id) is not deadlines[0][2]:
            heapq.heappop(deadlines)
        if deadlines:
            self._sweep.request(deadlines[0][0])

    @callback
    def _async_finish(
        self, command: PendingCommand, outcome: str, now: float, latency_s: float | None = None
    ) -> None:
        """Report an outcome and wake whoever waits for it."""
        result = CommandOutcome(
            command.entity_id,
            command.domain,
            command.service,
            outcome,
            latency_s,
            command.context,
            now,
        )
        self._on_outcome(result)
        waiter = self._waiters.pop((command.context.id, command.entity_id), None)
        if waiter is not None and not waiter.done():
            waiter.set_result(result)
