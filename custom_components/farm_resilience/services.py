"""Actions: a verified command with retries, and resetting the statistics."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import voluptuous as vol
from homeassistant.const import ATTR_ENTITY_ID
from homeassistant.core import (
    Context,
    HomeAssistant,
    ServiceCall,
    ServiceResponse,
    SupportsResponse,
    callback,
)
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers import config_validation as cv

from .const import (
    DOMAIN,
    OUTCOME_NOOP,
    OUTCOME_SUCCESS,
    OUTCOME_TIMEOUT,
    OUTCOME_UNAVAILABLE,
    SERVICE_RESET_STATISTICS,
    SERVICE_SEND_COMMAND,
)
from .expectations import expect
from .hub import FarmResilienceHub
from .tracker import CommandOutcome

ATTR_ACTION = "action"
ATTR_DATA = "data"
ATTR_RETRIES = "retries"
ATTR_TIMEOUT = "timeout"
DEFAULT_RETRIES = 3
# First retry after 1 s, then 2 s, 4 s...: a busy radio network gets room to recover.
BACKOFF_S = 1.0
# Outcomes worth another attempt; a superseded command was overruled on purpose.
RETRY_OUTCOMES = frozenset({OUTCOME_TIMEOUT, OUTCOME_UNAVAILABLE})
VERIFIED_OUTCOMES = frozenset({OUTCOME_SUCCESS, OUTCOME_NOOP})
# The tracker ends every command by its deadline; this margin only guards against a bug.
WAIT_MARGIN_S = 5.0
_TARGET_KEYS = ("entity_id", "device_id", "area_id", "floor_id", "label_id")

SEND_COMMAND_SCHEMA = vol.Schema(
    {
        vol.Required(ATTR_ENTITY_ID): cv.entity_ids,
        vol.Required(ATTR_ACTION): cv.service,
        vol.Optional(ATTR_DATA, default={}): vol.All(
            dict, vol.Schema({vol.NotIn(_TARGET_KEYS): object}, extra=vol.ALLOW_EXTRA)
        ),
        vol.Optional(ATTR_RETRIES, default=DEFAULT_RETRIES): vol.All(
            vol.Coerce(int), vol.Range(min=0, max=10)
        ),
        vol.Optional(ATTR_TIMEOUT): vol.All(vol.Coerce(float), vol.Range(min=0.1, max=3600)),
    }
)


@callback
def async_setup_services(hass: HomeAssistant) -> None:
    """Register the integration's actions."""
    hass.services.async_register(
        DOMAIN,
        SERVICE_SEND_COMMAND,
        _async_send_command,
        schema=SEND_COMMAND_SCHEMA,
        supports_response=SupportsResponse.OPTIONAL,
    )
    hass.services.async_register(DOMAIN, SERVICE_RESET_STATISTICS, _async_reset_statistics)


def _loaded_hub(hass: HomeAssistant) -> FarmResilienceHub:
    """Return the loaded hub, or raise a translated error."""
    for entry in hass.config_entries.async_loaded_entries(DOMAIN):
        if isinstance(hub := entry.runtime_data, FarmResilienceHub):
            return hub
    raise ServiceValidationError(translation_domain=DOMAIN, translation_key="hub_not_loaded")


async def _async_reset_statistics(call: ServiceCall) -> None:
    """Forget the window's statistics."""
    _loaded_hub(call.hass).async_reset_statistics()


def _check_verifiable(
    hub: FarmResilienceHub, action: str, data: dict[str, Any], entity_ids: list[str]
) -> None:
    """Raise unless the tracker can judge this action on every target."""
    domain, service = action.split(".", 1)
    untracked = [
        e for e in entity_ids if e not in hub.tracker.followed or e.split(".")[0] != domain
    ]
    if untracked:
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="entity_not_tracked",
            translation_placeholders={"entities": ", ".join(untracked), "action": action},
        )
    for entity_id in entity_ids:
        state = hub.hass.states.get(entity_id)
        expectation = None if state is None else expect(domain, service, data, state)
        if expectation is None or expectation.stops:
            raise ServiceValidationError(
                translation_domain=DOMAIN,
                translation_key="action_not_verifiable",
                translation_placeholders={"entity_id": entity_id, "action": action},
            )


async def _async_attempt(
    hub: FarmResilienceHub,
    call: ServiceCall,
    entity_ids: list[str],
    wait_s: float,
) -> dict[str, CommandOutcome | None]:
    """Call the action once on `entity_ids` and wait for the tracker's outcome of each."""
    domain, service = call.data[ATTR_ACTION].split(".", 1)
    context = Context(user_id=call.context.user_id, parent_id=call.context.id)
    waiters = hub.tracker.async_wait_for(context, entity_ids, wait_s)
    try:
        await hub.hass.services.async_call(
            domain,
            service,
            {**call.data[ATTR_DATA], ATTR_ENTITY_ID: entity_ids},
            blocking=True,
            context=context,
        )
    except (vol.Invalid, ServiceValidationError):
        hub.tracker.async_forget_waiters(context)
        raise
    except HomeAssistantError:
        pass  # A device error: the tracker still judges what the entity does.
    await asyncio.wait(waiters.values(), timeout=wait_s + WAIT_MARGIN_S)
    hub.tracker.async_forget_waiters(context)
    return {
        entity_id: waiter.result() if waiter.done() and not waiter.cancelled() else None
        for entity_id, waiter in waiters.items()
    }


async def _async_send_command(call: ServiceCall) -> ServiceResponse:
    """Call an action until every target shows its result, with exponential backoff."""
    hub = _loaded_hub(call.hass)
    entity_ids: list[str] = call.data[ATTR_ENTITY_ID]
    _check_verifiable(hub, call.data[ATTR_ACTION], call.data[ATTR_DATA], entity_ids)
    timeout: float = call.data.get(ATTR_TIMEOUT, hub.options.command_timeout)
    results: dict[str, dict[str, Any]] = {
        entity_id: {"outcome": None, "attempts": 0, "latency_s": None} for entity_id in entity_ids
    }
    remaining = list(entity_ids)
    for attempt in range(call.data[ATTR_RETRIES] + 1):
        if attempt:
            await asyncio.sleep(BACKOFF_S * 2 ** (attempt - 1))
        outcomes = await _async_attempt(hub, call, remaining, timeout)
        for entity_id, outcome in outcomes.items():
            result = results[entity_id]
            result["attempts"] += 1
            result["outcome"] = outcome.outcome if outcome else OUTCOME_TIMEOUT
            result["latency_s"] = outcome.latency_s if outcome else None
        remaining = [e for e in remaining if results[e]["outcome"] in RETRY_OUTCOMES]
        if not remaining:
            break
    if unverified := [e for e, r in results.items() if r["outcome"] not in VERIFIED_OUTCOMES]:
        raise HomeAssistantError(
            translation_domain=DOMAIN,
            translation_key="command_unverified",
            translation_placeholders={
                "action": call.data[ATTR_ACTION],
                "entities": ", ".join(
                    f"{e} ({results[e]['outcome']} after {results[e]['attempts']} attempts)"
                    for e in unverified
                ),
            },
        )
    return cast(ServiceResponse, {"entities": results}) if call.return_response else None
