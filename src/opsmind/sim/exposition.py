"""The simulated system as a Prometheus target: text exposition format and an optional ``/metrics`` server.

Metric names follow Prometheus conventions, one series per service (label ``service``):

- ``http_requests_total`` and ``http_requests_errors_total``: counters of requests served and failed;
- ``http_request_duration_seconds``: a summary (``quantile`` 0.5 and 0.95, ``_sum``, ``_count``);
- ``process_cpu_seconds_total``: a counter; ``process_resident_memory_bytes``: a gauge;
- ``opsmind_sim_utilisation_ratio``: a gauge, busy workers over workers (1 when saturated).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, generate_latest, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric, SummaryMetricFamily

from opsmind.sim.system import Snapshot, System

__all__ = ["MetricsServer", "SystemCollector", "render", "serve_metrics"]


class SystemCollector:
    """A prometheus_client collector that reads the latest :class:`Snapshot` of a :class:`System`.

    Examples
    --------
    >>> system = System(seed=0)
    >>> _ = system.step(43215.0, 15.0)
    >>> text = render(system)
    >>> [line for line in text.splitlines() if line.startswith('http_requests_total{service="cart"')]
    ['http_requests_total{service="cart"} 4670.0']
    """

    def __init__(self, system: System) -> None:
        self.system = system

    def collect(self) -> Iterator[Metric]:
        snap = self.system.snapshot  # one read: the step thread replaces it, never changes it
        if snap is None:
            return
        yield from _families(snap)


def _families(snap: Snapshot) -> Iterator[Metric]:
    requests = CounterMetricFamily("http_requests", "Requests served.", labels=["service"])
    errors = CounterMetricFamily("http_requests_errors", "Requests that failed.", labels=["service"])
    duration = SummaryMetricFamily(
        "http_request_duration_seconds", "Request latency, including the calls the service makes.",
        labels=["service"],
    )
    cpu = CounterMetricFamily("process_cpu_seconds", "CPU time used by all replicas.", labels=["service"])
    memory = GaugeMetricFamily("process_resident_memory_bytes", "Resident memory of all replicas.",
                               labels=["service"])
    util = GaugeMetricFamily("opsmind_sim_utilisation_ratio", "Busy workers over workers.", labels=["service"])
    for i, name in enumerate(snap.names):
        labels = [name]
        requests.add_metric(labels, float(snap.requests_total[i]))
        errors.add_metric(labels, float(snap.errors_total[i]))
        for q, quantiles in (("0.5", snap.latency_p50_s), ("0.95", snap.latency_p95_s)):
            # SummaryMetricFamily.add_metric takes no quantiles: add those samples directly.
            duration.add_sample("http_request_duration_seconds", {"service": name, "quantile": q},
                                float(quantiles[i]))
        duration.add_metric(labels, count_value=int(snap.requests_total[i]),
                            sum_value=float(snap.latency_seconds_total[i]))
        cpu.add_metric(labels, float(snap.cpu_seconds_total[i]))
        memory.add_metric(labels, float(snap.memory_bytes[i]))
        util.add_metric(labels, float(snap.utilisation[i]))
    yield from (requests, errors, duration, cpu, memory, util)


def render(system: System) -> str:
    """The latest state of ``system`` in the Prometheus text exposition format (empty before the first step)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SystemCollector(system))
    return generate_latest(registry).decode("utf-8")


@dataclass(frozen=True)
class MetricsServer:
    """A running ``/metrics`` endpoint; :meth:`close` stops it."""

    host: str
    port: int
    _server: object
    _thread: threading.Thread

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/metrics"

    def close(self) -> None:
        self._server.shutdown()  # type: ignore[attr-defined]
        self._server.server_close()  # type: ignore[attr-defined]
        self._thread.join(timeout=5.0)


def serve_metrics(system: System, host: str = "127.0.0.1", port: int = 0) -> MetricsServer:
    """Serve ``render(system)`` at ``http://host:port/metrics`` from a daemon thread (``port=0``: any free port)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SystemCollector(system))
    server, thread = start_http_server(port, addr=host, registry=registry)
    return MetricsServer(host=host, port=int(server.server_port), _server=server, _thread=thread)
