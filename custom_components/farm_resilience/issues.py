"""The hub's repair issues: one per device in outage, the broker link, unreadable storage.

Home Assistant deletes a repair issue once it is cleared, so what it would say
at the end (how long the outage lasted) goes into a `farm_resilience_outage_over`
event and an info line in the log instead.
"""

from __future__ import annotations

from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import issue_registry as ir

from .const import DOMAIN, EVENT_OUTAGE_OVER, LOGGER

DEVICE_ISSUE_PREFIX = "device_down_"
STORAGE_ISSUE = "storage_unreadable"
BROKER_ISSUE = "broker_disconnected"


def device_issue_id(key: str) -> str:
    """Return the repair issue id for a device (a device id, or an entity id without device)."""
    return f"{DEVICE_ISSUE_PREFIX}{key}"


@callback
def async_raise_device_issue(
    hass: HomeAssistant, key: str, *, translation_key: str, placeholders: dict[str, str]
) -> None:
    """Raise (or update) the repair issue of a device in outage."""
    ir.async_create_issue(
        hass,
        DOMAIN,
        device_issue_id(key),
        is_fixable=False,
        severity=ir.IssueSeverity.ERROR,
        translation_key=translation_key,
        translation_placeholders=placeholders,
    )


@callback
def async_clear_device_issue(hass: HomeAssistant, key: str) -> None:
    """Remove the repair issue of a device that is no longer in outage."""
    ir.async_delete_issue(hass, DOMAIN, device_issue_id(key))


@callback
def async_announce_outage_over(
    hass: HomeAssistant, name: str, *, outage: str, lasted_s: float, device_id: str | None = None
) -> None:
    """Say how long an outage lasted, now that its repair issue is gone."""
    LOGGER.info("%s: %s outage over after %.0f s", name, outage, lasted_s)
    hass.bus.async_fire(
        EVENT_OUTAGE_OVER,
        {"device": name, "device_id": device_id, "outage": outage, "lasted_s": round(lasted_s, 1)},
    )


@callback
def async_raise_broker_issue(hass: HomeAssistant, seconds: float) -> None:
    """Raise the repair issue of a broker link down for longer than `outage_alert`."""
    ir.async_create_issue(
        hass,
        DOMAIN,
        BROKER_ISSUE,
        is_fixable=False,
        severity=ir.IssueSeverity.ERROR,
        translation_key=BROKER_ISSUE,
        translation_placeholders={"seconds": f"{seconds:g}"},
    )


@callback
def async_clear_broker_issue(hass: HomeAssistant) -> None:
    """Remove the broker link's repair issue."""
    ir.async_delete_issue(hass, DOMAIN, BROKER_ISSUE)


@callback
def async_clear_device_issues(hass: HomeAssistant) -> None:
    """Remove every device repair issue (the hub is removed or disabled)."""
    for domain, issue_id in list(ir.async_get(hass).issues):
        if domain == DOMAIN and issue_id.startswith(DEVICE_ISSUE_PREFIX):
            ir.async_delete_issue(hass, DOMAIN, issue_id)


@callback
def async_raise_storage_issue(hass: HomeAssistant, path: str, error: str) -> None:
    """Tell the user that stored statistics could not be read and the hub started fresh."""
    ir.async_create_issue(
        hass,
        DOMAIN,
        STORAGE_ISSUE,
        is_fixable=False,
        is_persistent=False,
        severity=ir.IssueSeverity.WARNING,
        translation_key="storage_unreadable",
        translation_placeholders={"path": path, "error": error},
    )


@callback
def async_clear_storage_issue(hass: HomeAssistant) -> None:
    """Remove the storage issue (the hub entry is removed)."""
    ir.async_delete_issue(hass, DOMAIN, STORAGE_ISSUE)
