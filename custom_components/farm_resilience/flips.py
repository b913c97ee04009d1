"""Availability flips of the followed entities, as the outage monitor wants to hear of them."""

from __future__ import annotations

from collections.abc import Callable

from homeassistant.const import STATE_UNAVAILABLE
from homeassistant.core import State, callback

# Status of an entity: False = up, True = unavailable, None = no state at all (removed),
# and when (a wall-clock timestamp).
type Availability = Callable[[str, bool | None, float], None]


def status_of(state: State | None) -> bool | None:
    """Return an entity's status: unavailable (True), up (False) or gone (None)."""
    return None if state is None else state.state == STATE_UNAVAILABLE


class AvailabilityFlips:
    """Reports each followed entity once when first seen, then only when its status flips."""

    def __init__(self, report: Availability) -> None:
        """Report to `report`; every entity counts as up until seen otherwise."""
        self._report = report
        # Entities that are not up: True = unavailable, None = no state at all.
        self._not_up: dict[str, bool | None] = {}

    @callback
    def first_seen(self, entity_id: str, state: State | None) -> None:
        """Report the status of an entity followed from now on."""
        status = status_of(state)
        if status is not False:
            self._not_up[entity_id] = status
        self._report(entity_id, status, state.last_updated_timestamp if state else 0)

    @callback
    def changed(self, entity_id: str, state: State | None, at: float) -> None:
        """Report a state change at `at` if it flips the entity's status."""
        status = status_of(state)
        if status is not self._not_up.get(entity_id, False):
            if status is False:
                del self._not_up[entity_id]
            else:
                self._not_up[entity_id] = status
            self._report(entity_id, status, at)
