"""Config, options and reconfigure flows: the hub, and edge agents (discovered or added)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import voluptuous as vol
from homeassistant.config_entries import ConfigEntry, ConfigFlow, ConfigFlowResult, OptionsFlow
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.selector import (
    EntitySelector,
    EntitySelectorConfig,
    NumberSelector,
    NumberSelectorConfig,
    NumberSelectorMode,
    TextSelector,
)
from homeassistant.helpers.service_info.mqtt import MqttServiceInfo

from .const import (
    AGENT_ID_PATTERN,
    CONF_AGENT_ID,
    CONF_COMMAND_TIMEOUT,
    CONF_LATENCY_TARGET,
    CONF_MIN_SAMPLES,
    CONF_MONITORED_SENSORS,
    CONF_OUTAGE_ALERT,
    CONF_STALE_AFTER,
    CONF_SUCCESS_TARGET,
    CONF_TOPIC_PREFIX,
    CONF_TRACKED_ENTITIES,
    CONF_WINDOW_HOURS,
    CONTROLLABLE_DOMAINS,
    DEFAULT_OPTIONS,
    DEFAULT_TOPIC_PREFIX,
    DOMAIN,
    HUB_NAME,
    HUB_UNIQUE_ID,
)
from .entries import FarmResilienceConfigEntry, is_agent_entry, is_hub_entry

SENSOR_DOMAINS = ("sensor", "binary_sensor")
# A topic level: no wildcards, no empty level, no leading or trailing slash.
_TOPIC_PREFIX = re.compile(r"^[^#+/\s]+(/[^#+/\s]+)*$")
_AGENT_ID = re.compile(rf"^{AGENT_ID_PATTERN}$")
# <topic_prefix>/agent/<agent_id>/status, as the manifest's `mqtt` key subscribes to it.
_STATUS_TOPIC = re.compile(rf"^(?P<prefix>.+)/agent/(?P<agent_id>{AGENT_ID_PATTERN})/status$")
# Field -> (lowest, highest, error); the latency target is also capped by the timeout.
RANGES: dict[str, tuple[float, float, str]] = {
    CONF_COMMAND_TIMEOUT: (0.5, 600, "invalid_command_timeout"),
    CONF_SUCCESS_TARGET: (50, 100, "invalid_success_target"),
    CONF_LATENCY_TARGET: (0.1, 600, "invalid_latency_target"),
    CONF_OUTAGE_ALERT: (5, 86400, "invalid_outage_alert"),
    CONF_STALE_AFTER: (10, 604800, "invalid_stale_after"),
    CONF_WINDOW_HOURS: (1, 168, "invalid_window_hours"),
    CONF_MIN_SAMPLES: (1, 100000, "invalid_min_samples"),
}


def _entities_schema(defaults: Mapping[str, Any]) -> dict[vol.Marker, Any]:
    """Return the fields choosing what to watch."""
    return {
        vol.Optional(
            CONF_TRACKED_ENTITIES, default=list(defaults[CONF_TRACKED_ENTITIES])
        ): EntitySelector(EntitySelectorConfig(domain=sorted(CONTROLLABLE_DOMAINS), multiple=True)),
        vol.Optional(
            CONF_MONITORED_SENSORS, default=list(defaults[CONF_MONITORED_SENSORS])
        ): EntitySelector(EntitySelectorConfig(domain=list(SENSOR_DOMAINS), multiple=True)),
    }


def _topic_schema(defaults: Mapping[str, Any]) -> dict[vol.Marker, Any]:
    """Return the field choosing where agents publish."""
    return {vol.Required(CONF_TOPIC_PREFIX, default=defaults[CONF_TOPIC_PREFIX]): TextSelector()}


def _thresholds_schema(defaults: Mapping[str, Any]) -> dict[vol.Marker, Any]:
    """Return the threshold fields; ranges are checked by `validate` to give translated errors."""
    box = NumberSelector(NumberSelectorConfig(mode=NumberSelectorMode.BOX, step="any"))
    return {vol.Required(key, default=defaults[key]): box for key in RANGES}


def _unknown(hass: HomeAssistant, entity_ids: list[str]) -> bool:
    """Return whether any entity id is neither registered nor has a state (a typo)."""
    registry = er.async_get(hass)
    return any(
        hass.states.get(entity_id) is None and registry.async_get(entity_id) is None
        for entity_id in entity_ids
    )


def validate(hass: HomeAssistant, user_input: Mapping[str, Any]) -> dict[str, str]:
    """Return translated error keys per field; empty when the input is good."""
    errors: dict[str, str] = {}
    if CONF_TOPIC_PREFIX in user_input and not _TOPIC_PREFIX.match(user_input[CONF_TOPIC_PREFIX]):
        errors[CONF_TOPIC_PREFIX] = "invalid_topic_prefix"
    if CONF_AGENT_ID in user_input and not _AGENT_ID.match(user_input[CONF_AGENT_ID]):
        errors[CONF_AGENT_ID] = "invalid_agent_id"
    # The selectors already restrict domains; they cannot tell a removed entity from a real one.
    if _unknown(hass, user_input.get(CONF_TRACKED_ENTITIES, [])):
        errors[CONF_TRACKED_ENTITIES] = "unknown_entity"
    if _unknown(hass, user_input.get(CONF_MONITORED_SENSORS, [])):
        errors[CONF_MONITORED_SENSORS] = "unknown_entity"
    for key, (lowest, highest, error) in RANGES.items():
        if key in user_input and not lowest <= user_input[key] <= highest:
            errors[key] = error
    timeout = user_input.get(CONF_COMMAND_TIMEOUT)
    latency = user_input.get(CONF_LATENCY_TARGET)
    timeout_ok = timeout is not None and CONF_COMMAND_TIMEOUT not in errors
    if timeout_ok and latency is not None and latency > timeout:
        errors.setdefault(CONF_LATENCY_TARGET, "latency_above_timeout")
    return errors


def _clean(user_input: Mapping[str, Any]) -> dict[str, Any]:
    """Return the input with whole numbers where the option is a count."""
    cleaned = dict(user_input)
    if CONF_MIN_SAMPLES in cleaned:
        cleaned[CONF_MIN_SAMPLES] = int(cleaned[CONF_MIN_SAMPLES])
    return cleaned


def agent_unique_id(agent_id: str) -> str:
    """Return an agent entry's unique id; prefixed, since an agent may be called "hub"."""
    return f"agent_{agent_id}"


def agent_data(agent_id: str, topic_prefix: str) -> dict[str, str]:
    """Return an agent entry's data: the agent_id, and the prefix only when not the default."""
    if topic_prefix == DEFAULT_TOPIC_PREFIX:
        return {CONF_AGENT_ID: agent_id}
    return {CONF_AGENT_ID: agent_id, CONF_TOPIC_PREFIX: topic_prefix}


def _agent_schema(defaults: Mapping[str, Any], *, with_id: bool) -> vol.Schema:
    """Return the fields naming an agent and where it publishes."""
    fields: dict[vol.Marker, Any] = {}
    if with_id:
        fields[vol.Required(CONF_AGENT_ID, default=defaults.get(CONF_AGENT_ID, ""))] = (
            TextSelector()
        )
    fields.update(_topic_schema(defaults))
    return vol.Schema(fields)


class FarmResilienceConfigFlow(ConfigFlow, domain=DOMAIN):
    """Set up the one Farm Resilience hub, and one entry per edge agent."""

    VERSION = 1

    def __init__(self) -> None:
        """Start with no agent chosen."""
        self._agent: dict[str, str] = {}

    @staticmethod
    @callback
    def async_get_options_flow(
        config_entry: FarmResilienceConfigEntry,
    ) -> FarmResilienceOptionsFlow:
        """Return the options flow."""
        return FarmResilienceOptionsFlow()

    @classmethod
    @callback
    def async_supports_options_flow(cls, config_entry: ConfigEntry[Any]) -> bool:
        """Only the hub has options; an agent entry is its agent_id and topic prefix."""
        return is_hub_entry(config_entry)

    def _hub_entry(self) -> ConfigEntry[Any] | None:
        """Return the hub's entry, if it exists."""
        return next((e for e in self._async_current_entries() if is_hub_entry(e)), None)

    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Create the hub; once it exists, add an edge agent by hand instead."""
        if self._hub_entry() is not None:
            return await self.async_step_agent()
        errors: dict[str, str] = {}
        if user_input is not None and not (errors := validate(self.hass, user_input)):
            await self.async_set_unique_id(HUB_UNIQUE_ID)
            self._abort_if_unique_id_configured()
            return self.async_create_entry(
                title=HUB_NAME, data={}, options={**DEFAULT_OPTIONS, **user_input}
            )
        schema = vol.Schema({**_topic_schema(DEFAULT_OPTIONS), **_entities_schema(DEFAULT_OPTIONS)})
        return self.async_show_form(
            step_id="user",
            data_schema=self.add_suggested_values_to_schema(schema, user_input or {}),
            errors=errors,
        )

    async def async_step_agent(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Add an agent that discovery cannot find (a topic prefix other than the default)."""
        errors: dict[str, str] = {}
        if user_input is not None and not (errors := validate(self.hass, user_input)):
            agent_id = user_input[CONF_AGENT_ID]
            await self.async_set_unique_id(agent_unique_id(agent_id))
            self._abort_if_unique_id_configured()
            return self.async_create_entry(
                title=agent_id, data=agent_data(agent_id, user_input[CONF_TOPIC_PREFIX])
            )
        hub = self._hub_entry()
        defaults = {**DEFAULT_OPTIONS, **(hub.options if hub else {}), **(user_input or {})}
        return self.async_show_form(
            step_id="agent", data_schema=_agent_schema(defaults, with_id=True), errors=errors
        )

    async def async_step_mqtt(self, discovery_info: MqttServiceInfo) -> ConfigFlowResult:
        """Offer an agent whose retained status appeared on the broker."""
        match = _STATUS_TOPIC.match(discovery_info.topic)
        if match is None or not discovery_info.payload:
            # An empty payload clears the retained status: the agent was removed.
            return self.async_abort(reason="invalid_discovery_info")
        agent_id = match["agent_id"]
        await self.async_set_unique_id(agent_unique_id(agent_id))
        self._abort_if_unique_id_configured()
        self._agent = agent_data(agent_id, match["prefix"])
        self.context["title_placeholders"] = {"name": agent_id}
        return await self.async_step_confirm()

    async def async_step_confirm(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Ask before adding the discovered agent as a device."""
        agent_id = self._agent[CONF_AGENT_ID]
        if user_input is not None:
            return self.async_create_entry(title=agent_id, data=self._agent)
        self._set_confirm_only()
        return self.async_show_form(
            step_id="confirm",
            description_placeholders={
                "agent_id": agent_id,
                "topic_prefix": self._agent.get(CONF_TOPIC_PREFIX, DEFAULT_TOPIC_PREFIX),
            },
        )

    async def async_step_reconfigure(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Change where agents publish (the hub) or where this agent does; both reload."""
        entry = self._get_reconfigure_entry()
        if is_agent_entry(entry):
            return await self.async_step_reconfigure_agent(user_input)
        errors: dict[str, str] = {}
        if user_input is not None and not (errors := validate(self.hass, user_input)):
            self.hass.config_entries.async_update_entry(
                entry, options={**entry.options, **user_input}
            )
            return self.async_abort(reason="reconfigure_successful")
        defaults = {**DEFAULT_OPTIONS, **entry.options}
        return self.async_show_form(
            step_id="reconfigure",
            data_schema=vol.Schema(_topic_schema(user_input or defaults)),
            errors=errors,
        )

    async def async_step_reconfigure_agent(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Change the topic prefix an agent publishes under."""
        entry = self._get_reconfigure_entry()
        agent_id = entry.data[CONF_AGENT_ID]
        errors: dict[str, str] = {}
        if user_input is not None and not (errors := validate(self.hass, user_input)):
            return self.async_update_reload_and_abort(
                entry, data=agent_data(agent_id, user_input[CONF_TOPIC_PREFIX])
            )
        defaults = {CONF_TOPIC_PREFIX: entry.data.get(CONF_TOPIC_PREFIX, DEFAULT_TOPIC_PREFIX)}
        return self.async_show_form(
            step_id="reconfigure_agent",
            data_schema=_agent_schema(user_input or defaults, with_id=False),
            description_placeholders={"agent_id": agent_id},
            errors=errors,
        )


class FarmResilienceOptionsFlow(OptionsFlow):
    """Change what is tracked and the thresholds; the update reloads the hub."""

    async def async_step_init(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Show every option but the topic prefix (that one is reconfigured)."""
        errors: dict[str, str] = {}
        if user_input is not None and not (errors := validate(self.hass, user_input)):
            return self.async_create_entry(data={**self.config_entry.options, **_clean(user_input)})
        defaults = {**DEFAULT_OPTIONS, **self.config_entry.options, **(user_input or {})}
        schema = vol.Schema({**_entities_schema(defaults), **_thresholds_schema(defaults)})
        return self.async_show_form(step_id="init", data_schema=schema, errors=errors)
