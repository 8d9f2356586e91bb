"""``/metrics``: opsmind's own telemetry plus its findings, read from the store at each scrape.

Findings, per tenant:

* ``opsmind_anomaly_probability{tenant,service,series}``: the latest anomaly probability of each series with an
  anomaly in the last ``anomaly_window_s`` seconds (default 15 minutes; series without one are absent);
* ``opsmind_forecast_mean{...}``, ``opsmind_forecast_upper{...}``: the latest forecast of each series (issued in the
  last day) at its next step (the first forecast time at or after now); upper is the widest interval's bound;
* ``opsmind_recommended_replicas{tenant,service}``: the latest ``scale`` recommendation of each service;
* ``opsmind_incidents_open{tenant,priority}``: open incidents per priority, P1 to P4 (0 included);
* ``opsmind_findings_up``: 1 when the store answered, 0 when it did not (the other findings are then absent).

``series`` is the series selector (``name{label="value",...}``).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric

from opsmind.core.errors import OpsmindError
from opsmind.store import NotFoundError, SeriesRecord, Store
from opsmind.telemetry import Telemetry

__all__ = ["FindingsCollector", "render_metrics"]

log = logging.getLogger("opsmind.api")
_SERIES_LABELS = ["tenant", "service", "series"]
_PRIORITIES = ("P1", "P2", "P3", "P4")


class FindingsCollector:
    """A prometheus_client collector of the findings in ``store`` (see the module docstring)."""

    def __init__(self, store: Store, *, clock: Callable[[], float] = time.time, anomaly_window_s: float = 900.0,
                 forecast_window_s: float = 86400.0) -> None:
        self.store = store
        self.clock = clock
        self.anomaly_window_s = anomaly_window_s
        self.forecast_window_s = forecast_window_s

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("opsmind_findings_up", "1 when the findings below could be read from the store.")
        families = [
            GaugeMetricFamily("opsmind_anomaly_probability", "Latest anomaly probability of the series (anomalies "
                              "of the last minutes only).", labels=_SERIES_LABELS),
            GaugeMetricFamily("opsmind_forecast_mean", "Latest forecast of the series at its next step.",
                              labels=_SERIES_LABELS),
            GaugeMetricFamily("opsmind_forecast_upper", "Upper bound of the widest interval of the latest forecast "
                              "at its next step.", labels=_SERIES_LABELS),
            GaugeMetricFamily("opsmind_recommended_replicas", "Replicas of the latest scale recommendation.",
                              labels=["tenant", "service"]),
            GaugeMetricFamily("opsmind_incidents_open", "Open incidents by priority.", labels=["tenant", "priority"]),
        ]
        try:
            now = self.clock()
            for tenant in self.store.tenants.list():
                self._tenant(tenant.id, now, *families)
        except OpsmindError as exc:  # the store is down: say so, keep the telemetry
            log.warning("findings for /metrics: %s", exc)
            up.add_metric([], 0.0)
            yield up
            return
        up.add_metric([], 1.0)
        yield up
        yield from families

    def _tenant(self, tenant: str, now: float, prob: GaugeMetricFamily, mean: GaugeMetricFamily,
                upper: GaugeMetricFamily, replicas: GaugeMetricFamily, incidents: GaugeMetricFamily) -> None:
        names: dict[int, SeriesRecord | None] = {}

        def labels(series_id: int) -> list[str] | None:
            if series_id not in names:
                try:
                    names[series_id] = self.store.series.get(tenant, series_id)
                except NotFoundError:
                    names[series_id] = None
            s = names[series_id]
            return None if s is None else [tenant, s.service or "", s.selector]

        done: set[int] = set()
        for a in self.store.anomalies.list(tenant, since=now - self.anomaly_window_s, limit=100_000):
            if a.series_id not in done and (lab := labels(a.series_id)) is not None:
                done.add(a.series_id)
                prob.add_metric(lab, a.probability)
        done.clear()
        for f in self.store.forecasts.list(tenant, since=now - self.forecast_window_s, limit=100_000):
            if f.series_id in done:
                continue
            done.add(f.series_id)
            step = next((i for i, t in enumerate(f.timestamps) if t >= now), None)
            lab = labels(f.series_id)
            if step is None or lab is None:
                continue
            if math.isfinite(f.mean[step]):
                mean.add_metric(lab, f.mean[step])
            if f.intervals:
                hi = f.intervals[max(f.intervals)][1][step]
                if math.isfinite(hi):
                    upper.add_metric(lab, hi)
        services: set[str] = set()
        for r in self.store.recommendations.list(tenant, kind="scale", limit=10_000):
            key = r.service or r.target
            value = r.payload.get("replicas") if isinstance(r.payload, dict) else None
            if key in services or not isinstance(value, int | float) or isinstance(value, bool):
                continue
            services.add(key)
            replicas.add_metric([tenant, key], float(value))
        counts = dict.fromkeys(_PRIORITIES, 0)
        for inc in self.store.incidents.list(tenant, status="open", limit=10_000):
            counts[inc.priority] = counts.get(inc.priority, 0) + 1
        for priority, n in counts.items():
            incidents.add_metric([tenant, priority], float(n))


def render_metrics(telemetry: Telemetry, findings: CollectorRegistry) -> bytes:
    """The text exposition of the telemetry followed by the findings."""
    return telemetry.render() + generate_latest(findings)
