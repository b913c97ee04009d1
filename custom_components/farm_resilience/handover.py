"""Commands in flight across a reload of the hub: the old tracker parks them, the new one adopts.

Saving the options reloads the hub, and with it the tracker. A valve that was
opening when the options were saved still opens: its command keeps its
deadline and its outcome, and whoever waits for it (send_command) keeps waiting
on the same future instead of seeing a false failure.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from homeassistant.core import CALLBACK_TYPE, HassJob, HomeAssistant, callback
from homeassistant.helpers.event import async_call_later
from homeassistant.util.hass_dict import HassKey

from .const import DOMAIN

if TYPE_CHECKING:
    from .bounces import BounceWatch
    from .commands import PendingCommand
    from .waiters import Waiters

# A reload sets the new hub up at once; parked commands nobody adopts within this
# (the hub was removed or disabled) are dropped and their waiters cancelled.
ADOPT_WITHIN_S = 60.0
HANDOVER: HassKey[Handover] = HassKey(f"{DOMAIN}_command_handover")


@dataclass(slots=True)
class Handover:
    """What a stopped tracker leaves for the next one."""

    pending: list[PendingCommand]
    waiters: Waiters
    bounces: BounceWatch
    expiry: CALLBACK_TYPE | None = field(default=None)

    @callback
    def async_drop(self) -> None:
        """Forget everything; whoever waits is told the wait was cancelled."""
        self.waiters.cancel_all()
        self.pending.clear()
        self.bounces.clear()


@callback
def async_park(hass: HomeAssistant, handover: Handover) -> None:
    """Keep the handover for the next tracker; drop it if none comes in time."""
    if (previous := hass.data.pop(HANDOVER, None)) is not None:
        _async_cancel_expiry(previous)
        previous.async_drop()

    @callback
    def _expire(_now: datetime) -> None:
        if hass.data.get(HANDOVER) is handover:
            del hass.data[HANDOVER]
            handover.async_drop()

    # Home Assistant stopping cancels it: pending commands are dropped then anyway.
    handover.expiry = async_call_later(
        hass, ADOPT_WITHIN_S, HassJob(_expire, cancel_on_shutdown=True)
    )
    hass.data[HANDOVER] = handover


@callback
def async_take(hass: HomeAssistant) -> Handover | None:
    """Return the parked handover, if any, for a new tracker to adopt."""
    if (handover := hass.data.pop(HANDOVER, None)) is not None:
        _async_cancel_expiry(handover)
    return handover


@callback
def _async_cancel_expiry(handover: Handover) -> None:
    """Stop the timer that would drop the handover."""
    if handover.expiry is not None:
        handover.expiry()
        handover.expiry = None
