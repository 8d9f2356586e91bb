"""The workload simulator behind ``opsmind demo`` and many tests.

A :class:`Topology` of services (a call graph) runs as a seeded, discrete-time :class:`System` under daily
traffic; :class:`Incident` objects inject faults with a known root cause; :func:`simulate` fast-forwards hours
into :class:`~opsmind.core.Frame` objects with ground truth; :func:`render` and :func:`serve_metrics` expose the
live state in the Prometheus text format.
"""

from __future__ import annotations

from opsmind.sim.exposition import MetricsServer, SystemCollector, render, serve_metrics
from opsmind.sim.incidents import DEFAULT_MAGNITUDE, KINDS, Incident, IncidentKind, schedule
from opsmind.sim.run import DEFAULT_START_S, Simulation, simulate
from opsmind.sim.system import GAUGES, Snapshot, System, daily_shape
from opsmind.sim.topology import Call, Service, Topology, default_topology

__all__ = [
    "DEFAULT_MAGNITUDE",
    "DEFAULT_START_S",
    "GAUGES",
    "KINDS",
    "Call",
    "Incident",
    "IncidentKind",
    "MetricsServer",
    "Service",
    "Simulation",
    "Snapshot",
    "System",
    "SystemCollector",
    "Topology",
    "daily_shape",
    "default_topology",
    "render",
    "schedule",
    "serve_metrics",
    "simulate",
]
