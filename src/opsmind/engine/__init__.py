"""The engine: the loop that wires sources -> analyzers -> store -> incidents, alerts and notifications.

:class:`Engine` runs it (``run_cycle`` once, or ``start``/``stop`` a background thread); per-series detection is
the pure :func:`~opsmind.engine.detection.detect_series`, run through a ``concurrent.futures`` executor;
:class:`IncidentService` turns alerts into stored incidents; :class:`RemediationLoop` hands what a cycle found to
the remediation playbooks in a worker thread; :class:`ScrapeSource` reads ``/metrics`` endpoints when no
Prometheus server is there (the demo).
"""

from __future__ import annotations

from opsmind.engine.detection import DetectResult, DetectTask, ThresholdSettings, detect_series
from opsmind.engine.engine import CycleReport, Engine, make_executor
from opsmind.engine.incidents import IncidentService
from opsmind.engine.remediation import RemediationLoop, build_remediator
from opsmind.engine.sources import PullSource, ScrapeSource, parse_query

__all__ = [
    "CycleReport",
    "DetectResult",
    "DetectTask",
    "Engine",
    "IncidentService",
    "PullSource",
    "RemediationLoop",
    "ScrapeSource",
    "ThresholdSettings",
    "build_remediator",
    "detect_series",
    "make_executor",
    "parse_query",
]
