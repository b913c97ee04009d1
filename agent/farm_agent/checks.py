"""The end-to-end checks `farm-agent check` adds to the probes, as one plain value each.

Home Assistant's API and hub, and a canary task through a worker, are not part of
the health the agent publishes (the agent is what they check from the outside);
`check` shows each as a line and a key of its JSON, and a failed one is a problem.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class CheckOutcome:
    """One check: passed (`ok` True), failed (False) or skipped (None), and what was seen."""

    name: str
    ok: bool | None
    latency_ms: float | None
    detail: str

    @property
    def problem(self) -> str | None:
        """The sentence for the health's problems when it failed."""
        return f"{self.name}: {self.detail}" if self.ok is False else None

    def as_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "latency_ms": None if self.latency_ms is None else round(self.latency_ms, 1),
            "detail": self.detail,
        }


def skipped(name: str, why: str) -> CheckOutcome:
    """A check that did not run, and why (it is no problem)."""
    return CheckOutcome(name, None, None, f"skipped: {why}")
