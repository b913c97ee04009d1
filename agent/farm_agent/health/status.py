"""The health verdict's three values, as the health JSON and Home Assistant spell them."""

from __future__ import annotations

from enum import StrEnum


class HealthStatus(StrEnum):
    """The verdict: `down` when the relay cannot work, `degraded` on any problem, else `ok`."""

    OK = "ok"
    DEGRADED = "degraded"
    DOWN = "down"
