"""Reading a Prometheus page (/metrics of the agent or the worker)."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families


def metric_values(page: str) -> dict[str, float]:
    """`name{labels}` -> value of every sample, labels sorted: `name{a="1",b="2"}`."""
    return {
        f"{sample.name}{_labels(sample.labels)}": sample.value
        for family in text_string_to_metric_families(page)
        for sample in family.samples
    }


def sample(page: str, name: str, **labels: str) -> float | None:
    """The value of one sample, labels in any order; None if absent."""
    return metric_values(page).get(f"{name}{_labels(labels)}")


def metric_value(page: str, name: str, **labels: str) -> float:
    """The value of one sample, which must be on the page."""
    found = sample(page, name, **labels)
    assert found is not None, f"{name} {labels or ''} not on the metrics page"
    return found


def _labels(labels: dict[str, str]) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{key}="{value}"' for key, value in sorted(labels.items())) + "}"
