"""opsmind's own health metrics, in one registry shared by the engine, the API and the notifiers of a process.

The API serves them at ``/metrics`` beside the findings (anomaly probability, forecasts, replicas), which it reads
from the store. Every component takes a :class:`Telemetry` (tests make their own; nothing is global).

>>> t = Telemetry()
>>> t.ingested("default", "remote_write", 3)
>>> t.source_up("prometheus", True)
>>> b"opsmind_ingested_samples_total" in t.render()
True
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

__all__ = ["Telemetry"]


class Telemetry:
    """Counters and gauges of opsmind's health. All methods are cheap and thread-safe."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        r = self.registry
        self._ingested = Counter("opsmind_ingested_samples", "Samples stored, by tenant and ingest path "
                                 "(pull, ingest, remote_write).", ["tenant", "path"], registry=r)
        self._cycle = Histogram("opsmind_engine_cycle_seconds", "Wall time of one engine cycle (pull, detect, "
                                "record).", registry=r,
                                buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120))
        self._source_up = Gauge("opsmind_source_up", "1 when the last request to a source succeeded.", ["source"],
                                registry=r)
        self._stale = Gauge("opsmind_series_stale", "Series with no new sample for longer than stale_after_s.",
                            ["tenant"], registry=r)
        self._errors = Counter("opsmind_engine_errors", "Errors in engine stages (the cycle goes on).", ["stage"],
                               registry=r)
        self._notified = Counter("opsmind_notifications", "Notifications sent, by channel and result.",
                                 ["channel", "result"], registry=r)
        self._requests = Counter("opsmind_api_requests", "API requests, by route and status class.",
                                 ["route", "status"], registry=r)

    def ingested(self, tenant: str, path: str, n: int) -> None:
        if n > 0:
            self._ingested.labels(tenant, path).inc(n)

    def cycle(self, seconds: float) -> None:
        self._cycle.observe(seconds)

    def source_up(self, source: str, up: bool) -> None:
        self._source_up.labels(source).set(1.0 if up else 0.0)

    def series_stale(self, tenant: str, n: int) -> None:
        self._stale.labels(tenant).set(n)

    def error(self, stage: str) -> None:
        self._errors.labels(stage).inc()

    def notified(self, channel: str, ok: bool) -> None:
        self._notified.labels(channel, "ok" if ok else "error").inc()

    def request(self, route: str, status: int) -> None:
        self._requests.labels(route, f"{status // 100}xx").inc()

    def render(self) -> bytes:
        """The registry in Prometheus text format."""
        return generate_latest(self.registry)
