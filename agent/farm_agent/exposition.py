"""The figures of `farm_agent.metrics` in the Prometheus text format, by prometheus_client.

Imported on the first scrape of /metrics only: see farm_agent.metrics for why. The
families are the ones prometheus_client's own metrics expose (`_total` and `_created`
for counters; `_bucket`, `_count`, `_sum` and `_created` for histograms), and
`PROMETHEUS_DISABLE_CREATED_SERIES=true` leaves the `_created` samples out as it does.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from itertools import accumulate
from typing import cast

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString

from farm_agent.metrics import Counter, Family, Gauge, Histogram, Metrics

# How prometheus_client's own histograms write their bounds (le="0.005", le="1.0").
_le = cast(Callable[[float], str], floatToGoString)


def render(metrics: Metrics) -> tuple[bytes, str]:
    return generate_latest(_Figures(metrics, with_created=_created_series())), CONTENT_TYPE_LATEST


def _created_series() -> bool:
    # prometheus_client's own reading of the variable (metrics._get_use_created).
    disabled = os.environ.get("PROMETHEUS_DISABLE_CREATED_SERIES", "False")
    return disabled.lower() not in ("true", "1", "t")


class _Figures(Collector):
    def __init__(self, metrics: Metrics, *, with_created: bool) -> None:
        self._metrics = metrics
        self._with_created = with_created

    def collect(self) -> Iterator[Metric]:
        for family in self._metrics.families():
            yield _family(family, with_created=self._with_created)


def _family(family: Family, *, with_created: bool) -> Metric:
    name, documentation, labels = family.name, family.documentation, list(family.label_names)
    children = sorted(family.children.items())
    if family.info is not None:
        return InfoMetricFamily(name, documentation, value=dict(family.info))
    if family.kind == "counter":
        counters = CounterMetricFamily(name, documentation, labels=labels)
        for values, counter in children:
            assert isinstance(counter, Counter)
            since = counter.created if with_created else None
            counters.add_metric(list(values), counter.value, created=since)
        return counters
    if family.kind == "gauge":
        gauges = GaugeMetricFamily(name, documentation, labels=labels)
        for values, gauge in children:
            assert isinstance(gauge, Gauge)
            gauges.add_metric(list(values), gauge.value)
        return gauges
    histograms = HistogramMetricFamily(name, documentation, labels=labels)
    for values, histogram in children:
        assert isinstance(histogram, Histogram)
        bounds = [*(_le(bound) for bound in histogram.bounds), "+Inf"]
        cumulative = list(zip(bounds, accumulate(histogram.counts), strict=True))
        histograms.add_metric(list(values), cumulative, histogram.sum)
        if with_created:
            labelled = dict(zip(labels, values, strict=True))
            histograms.samples.append(Sample(f"{name}_created", labelled, histogram.created))
    return histograms
