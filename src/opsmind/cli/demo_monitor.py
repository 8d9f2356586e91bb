"""What ``opsmind demo`` runs: the simulator feeding one detector and one thresholder per (service, metric).

This is a small stand-in for the engine loop (sources -> analyzers -> findings): the simulator is the source,
each series gets its own detector, and every decision is checked against the injected incidents (ground truth).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from opsmind.core import FloatArray, Frame
from opsmind.detect import DETECTORS, Detector
from opsmind.detect.threshold import Thresholder
from opsmind.sim import Incident, Snapshot, System

__all__ = ["METRICS", "Detection", "IncidentEvent", "Monitor"]

METRICS: tuple[str, ...] = ("rate_rps", "latency_p95_s", "error_ratio", "cpu_cores", "memory_bytes")


@dataclass(frozen=True)
class Detection:
    """An alert the thresholder opened on one series."""

    t: float
    service: str
    metric: str
    severity: str
    probability: float
    value: float


@dataclass(frozen=True)
class IncidentEvent:
    """An injected incident starting (``started``) or ending at ``t``."""

    t: float
    incident: Incident
    started: bool


@dataclass
class _Series:
    detector: Detector
    thresholder: Thresholder
    probability: float = 0.0


@dataclass
class Monitor:
    """Steps ``system`` and scores every series; keeps the detections and which incidents were caught.

    ``protect`` is the probability above which a value is scored but not learned, so an incident does not
    teach the detector that it is normal. An incident counts as detected when a detection on its target
    service falls inside its window.
    """

    system: System
    detector: str = "opsmind"
    metrics: Sequence[str] = METRICS
    refractory: int = 20
    protect: float = 0.9
    detections: list[Detection] = field(default_factory=list)
    detected: dict[Incident, float] = field(default_factory=dict)  # incident -> time of first detection
    _series: dict[tuple[str, str], _Series] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in self.system.topology.names:
            for metric in self.metrics:
                self._series[name, metric] = _Series(DETECTORS.build(self.detector), Thresholder(
                    refractory=self.refractory, refractory_s=None))

    def warm_up(self, times: FloatArray, dt: float) -> None:
        """Advance the system over ``times`` and train every detector on the result (no decisions)."""
        gauges = self.system.advance(times, dt)
        stamps = np.round(times * 1e9).astype(np.int64).astype("datetime64[ns]")
        for i, name in enumerate(self.system.topology.names):
            for metric in self.metrics:
                frame = Frame(stamps, gauges[metric][:, i : i + 1], (metric,), name=f"{name}:{metric}")
                self._series[name, metric].detector.score(frame)

    def step(self, t: float, dt: float) -> tuple[Snapshot, list[IncidentEvent], list[Detection]]:
        """One step: the new snapshot, the incidents that started or ended, and the new detections."""
        snap = self.system.step(t, dt)
        events = [IncidentEvent(inc.start_s, inc, True) for inc in self.system.incidents
                  if t - dt < inc.start_s <= t]
        events += [IncidentEvent(inc.end_s, inc, False) for inc in self.system.incidents if t - dt < inc.end_s <= t]
        found: list[Detection] = []
        for i, name in enumerate(snap.names):
            for metric in self.metrics:
                series = self._series[name, metric]
                x = float(getattr(snap, metric)[i])
                p = series.detector.score_one(t, x)
                if p < self.protect:
                    series.detector.learn_one(t, x)
                series.probability = p
                decision = series.thresholder.process_one(t, p)
                if decision.is_anomaly:
                    found.append(Detection(t, name, metric, decision.severity or "low", p, x))
        for d in found:
            for inc in self.system.incidents:
                if inc.target == d.service and inc.active(d.t) and inc not in self.detected:
                    self.detected[inc] = d.t
        self.detections.extend(found)
        return snap, events, found

    def health(self, service: str) -> float:
        """The highest current anomaly probability over the service's metrics."""
        return max(self._series[service, m].probability for m in self.metrics)

    def injected(self, now: float) -> list[Incident]:
        """The incidents that started at or before ``now``."""
        return [inc for inc in self.system.incidents if inc.start_s <= now]
