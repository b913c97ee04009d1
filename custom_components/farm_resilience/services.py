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

from .commands import CommandOutcome
from .const import (
    DOMAIN,
    OUTCOME_NOOP,
    OUTCOME_SUCCESS,
    OUTCOME_TIMEOUT,
    OUTCOME_UNAVAILABLE,
    SERVICE_RESET_STATISTICS,
    SERVICE_SEND_COMMAND,
)
from .entries import is_hub_entry
from .expectations import expect, explicit_data, explicit_toggle
from .hub import FarmResilienceHub
from .temperatures import temperature_scale
from .virtual import is_virtual, members

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
# The wait ended with no verdict on the device: Home Assistant stopping, the hub
# removed, the entity disabled. Never retried: nothing is sent again.
OUTCOME_INTERRUPTED = "interrupted"
# The tracker ends every command by its deadline; this margin only guards against a bug.
WAIT_MARGIN_S = 5.0
# Keys that would widen the call beyond the entities send_command verifies.
TARGET_KEYS = ("entity_id", "device_id", "area_id", "floor_id", "label_id", "target")


def _no_targets(data: dict[str, Any]) -> dict[str, Any]:
    """Refuse target keys in `data`: every entity called must be one that is verified."""
    for key in TARGET_KEYS:
        if key in data:
            raise vol.Invalid(
                f"'{key}' is not allowed in data: name the entities in entity_id", path=[key]
            )
    return data


SEND_COMMAND_SCHEMA = vol.Schema(
    {
        vol.Required(ATTR_ENTITY_ID): cv.entity_ids,
        vol.Required(ATTR_ACTION): cv.service,
        vol.Optional(ATTR_DATA, default={}): vol.All(dict, _no_targets),
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
        if is_hub_entry(entry):
            return entry.runtime_data
    raise ServiceValidationError(translation_domain=DOMAIN, translation_key="hub_not_loaded")


async def _async_reset_statistics(call: ServiceCall) -> None:
    """Forget the window's statistics."""
    _loaded_hub(call.hass).async_reset_statistics()


def _check_tracked(hub: FarmResilienceHub, action: str, entity_ids: list[str]) -> None:
    """Raise unless every target is a device the hub follows, in the action's domain."""
    domain = action.split(".", 1)[0]
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
        if is_virtual(hub.hass, entity_id):
            raise ServiceValidationError(
                translation_domain=DOMAIN,
                translation_key="target_is_group",
                translation_placeholders={
                    "entity_id": entity_id,
                    "members": ", ".join(members(hub.hass, entity_id)),
                },
            )


def _explicit_services(hass: HomeAssistant, action: str, entity_ids: list[str]) -> dict[str, str]:
    """Return the service each target gets on every attempt: a toggle resolved once, now.

    A retried toggle would toggle again: a valve still opening would be stopped,
    then opened again. The explicit action (open_valve, turn_off...) is idempotent.
    """
    domain, service = action.split(".", 1)
    if service != "toggle":
        return dict.fromkeys(entity_ids, service)
    services: dict[str, str] = {}
    for entity_id in entity_ids:
        state = hass.states.get(entity_id)
        if state is None or (explicit := explicit_toggle(domain, state)) is None:
            raise ServiceValidationError(
                translation_domain=DOMAIN,
                translation_key="toggle_without_opposite",
                translation_placeholders={
                    "entity_id": entity_id,
                    "state": state.state if state is not None else "unknown",
                },
            )
        services[entity_id] = explicit
    return services


async def _async_check_verifiable(
    hass: HomeAssistant,
    call: ServiceCall,
    services: dict[str, str],
) -> None:
    """Raise unless the tracker can judge the explicit action on every target.

    A call Home Assistant refuses for an entity (an unsupported feature, a value out
    of range) is made once so that Home Assistant's own error reaches the caller.
    """
    domain = call.data[ATTR_ACTION].split(".", 1)[0]
    for entity_id, service in services.items():
        data = explicit_data(domain, service, call.data[ATTR_DATA])
        state = hass.states.get(entity_id)
        scale = temperature_scale(hass, entity_id)
        expectation = None if state is None else expect(domain, service, data, state, scale)
        if expectation is not None and expectation.refused:
            await hass.services.async_call(
                domain, service, {**data, ATTR_ENTITY_ID: entity_id}, blocking=True
            )
        if expectation is None or expectation.stops or expectation.refused:
            raise ServiceValidationError(
                translation_domain=DOMAIN,
                translation_key="action_not_verifiable",
                translation_placeholders={
                    "entity_id": entity_id,
                    "action": f"{domain}.{service}",
                },
            )


def _by_service(services: dict[str, str]) -> dict[str, list[str]]:
    """Group targets by the service they get: one call per service."""
    grouped: dict[str, list[str]] = {}
    for entity_id, service in services.items():
        grouped.setdefault(service, []).append(entity_id)
    return grouped


@callback
def _async_forget(hass: HomeAssistant, hub: FarmResilienceHub, context: Context) -> None:
    """Drop a call's waiters, in the tracker it started with and in the live one."""
    hub.tracker.async_forget_waiters(context)
    for entry in hass.config_entries.async_loaded_entries(DOMAIN):
        if is_hub_entry(entry) and (live := entry.runtime_data) is not hub:
            live.tracker.async_forget_waiters(context)


def _result(waiter: asyncio.Future[CommandOutcome]) -> tuple[str, float | None]:
    """Return (outcome, latency) of a waited-for command."""
    if waiter.cancelled():
        return OUTCOME_INTERRUPTED, None
    if not waiter.done():
        return OUTCOME_TIMEOUT, None
    outcome = waiter.result()
    return outcome.outcome, outcome.latency_s


async def _async_attempt(
    call: ServiceCall, services: dict[str, str], wait_s: float
) -> dict[str, tuple[str, float | None]]:
    """Call the explicit actions once and wait for the tracker's outcome of each target."""
    hass = call.hass
    hub = _loaded_hub(hass)  # the live hub: the options may have been saved meanwhile
    domain = call.data[ATTR_ACTION].split(".", 1)[0]
    waiters: dict[str, asyncio.Future[CommandOutcome]] = {}
    contexts: list[Context] = []
    try:
        for service, entity_ids in _by_service(services).items():
            context = Context(user_id=call.context.user_id, parent_id=call.context.id)
            contexts.append(context)
            waiters |= hub.tracker.async_wait_for(context, entity_ids, wait_s)
            try:
                await hass.services.async_call(
                    domain,
                    service,
                    {
                        **explicit_data(domain, service, call.data[ATTR_DATA]),
                        ATTR_ENTITY_ID: entity_ids,
                    },
                    blocking=True,
                    context=context,
                )
            except ServiceValidationError:
                raise  # the call was refused: nothing was sent
            except HomeAssistantError:
                pass  # A device error: the tracker still judges what the entity does.
        await asyncio.wait(waiters.values(), timeout=wait_s + WAIT_MARGIN_S)
        return {entity_id: _result(waiter) for entity_id, waiter in waiters.items()}
    finally:
        for context in contexts:
            _async_forget(hass, hub, context)


async def _async_send_command(call: ServiceCall) -> ServiceResponse:
    """Call an action until every target shows its result, with exponential backoff."""
    hass = call.hass
    hub = _loaded_hub(hass)
    action: str = call.data[ATTR_ACTION]
    entity_ids: list[str] = call.data[ATTR_ENTITY_ID]
    _check_tracked(hub, action, entity_ids)
    services = _explicit_services(hass, action, entity_ids)
    await _async_check_verifiable(hass, call, services)
    timeout: float = call.data.get(ATTR_TIMEOUT, hub.options.command_timeout)
    results: dict[str, dict[str, Any]] = {
        entity_id: {"outcome": None, "attempts": 0, "latency_s": None} for entity_id in entity_ids
    }
    remaining = list(entity_ids)
    for attempt in range(call.data[ATTR_RETRIES] + 1):
        if attempt:
            await asyncio.sleep(BACKOFF_S * 2 ** (attempt - 1))
        if hass.is_stopping:  # nothing is sent again while Home Assistant stops
            for entity_id in remaining:
                results[entity_id]["outcome"] = OUTCOME_INTERRUPTED
            break
        outcomes = await _async_attempt(call, {e: services[e] for e in remaining}, timeout)
        for entity_id, (outcome, latency_s) in outcomes.items():
            result = results[entity_id]
            result["attempts"] += 1
            result["outcome"] = outcome
            result["latency_s"] = latency_s
        remaining = [e for e in remaining if results[e]["outcome"] in RETRY_OUTCOMES]
        if not remaining:
            break
    if unverified := [e for e, r in results.items() if r["outcome"] not in VERIFIED_OUTCOMES]:
        raise HomeAssistantError(
            translation_domain=DOMAIN,
            translation_key="command_unverified",
            translation_placeholders={
                "action": action,
                "entities": ", ".join(
                    f"{e} ({results[e]['outcome']} after {results[e]['attempts']} attempts)"
                    for e in unverified
                ),
            },
        )
    return cast(ServiceResponse, {"entities": results}) if call.return_response else None
