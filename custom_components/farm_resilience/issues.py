"""The hub's repair issues: one per device in outage, one for storage it could not read."""

from __future__ import annotations

from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import issue_registry as ir

from .const import DOMAIN

DEVICE_ISSUE_PREFIX = "device_down_"
STORAGE_ISSUE = "storage_unreadable"


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
