"""Per-series detection as one pure, picklable work function: ``detect_series(task) -> result``.

The engine sends each series' new samples here through a ``concurrent.futures`` executor (a process pool, threads
or a Dask cluster), so the function takes everything it needs as plain values: the series' model state as bytes
(``None`` for a new series), the detector spec, the samples newer than the last scored time, a few earlier samples
for the baseline, and the thresholder settings. It returns the new state bytes and the decisions. It reads no
clock and does no I/O, so the same inputs give the same outputs on any executor.

A new series is *trained*: its history is learned without decisions (no alerts about the past). After that,
each sample is scored (the detector's anomaly probability), learned unless it is very anomalous (``protect``: an
incident must not teach the detector that it is normal; after ``max_protected`` protected samples in a row the
detector learns anyway, so a lasting level shift becomes the new normal), and decided by the series' own
:class:`~opsmind.detect.threshold.Thresholder`. A series alert is *open* from the sample that raised it until the
probability falls below the thresholder's clear level, or ``resolve_after_s`` after the probability last reached
the threshold (a probability that stays raised but below the threshold does not keep an incident open).
"""

from __future__ import annotations

import os
import pickle
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from opsmind.core import FloatArray
from opsmind.detect import DETECTORS, Detector, Thresholder

__all__ = [
    "DetectResult",
    "DetectTask",
    "Finding",
    "OpenAlert",
    "SeriesModel",
    "ThresholdSettings",
    "detect_series",
    "exit_with_parent",
]

PROTECT = 0.9  # a sample scored at or above this is not learned...
MAX_PROTECTED = 40  # ...unless this many samples in a row were protected


@dataclass(frozen=True)
class ThresholdSettings:
    """How probabilities become decisions for one series (``threshold`` already calibrated by feedback)."""

    threshold: float = 0.5
    refractory_s: float | None = 600.0
    clear: float | None = 0.2
    resolve_after_s: float = 300.0  # an open alert resolves this long after the last probability >= threshold


@dataclass(frozen=True)
class OpenAlert:
    """The series' alert that is firing: when it started, its severity and probability then."""

    started_at: float
    severity: str
    probability: float


@dataclass
class SeriesModel:
    """What is persisted per series (pickled): the detector, the thresholder and the bookkeeping."""

    spec: dict[str, Any]
    detector: Detector
    thresholder: Thresholder
    last_ts: float | None = None
    first_ts: float | None = None
    n_seen: int = 0
    protected: int = 0
    alert: OpenAlert | None = None
    last_probability: float = 0.0
    last_high: float | None = None  # the last time the probability reached the threshold


@dataclass(frozen=True)
class DetectTask:
    """Everything :func:`detect_series` needs; ``key`` is returned unchanged (the series id)."""

    key: int
    spec: Mapping[str, Any]
    state: bytes | None
    ts: FloatArray
    values: FloatArray
    threshold: ThresholdSettings = field(default_factory=ThresholdSettings)
    context_ts: FloatArray = field(default_factory=lambda: np.zeros(0))
    context_values: FloatArray = field(default_factory=lambda: np.zeros(0))


@dataclass(frozen=True)
class Finding:
    """One anomaly decision with its evidence."""

    ts: float
    value: float
    probability: float
    severity: str
    baseline: float
    window: tuple[float, float]
    threshold: float

    def evidence(self, method: str) -> dict[str, Any]:
        return {"value": _num(self.value), "baseline": _num(self.baseline), "window": list(self.window),
                "method": method, "threshold": self.threshold, "probability": self.probability}


@dataclass(frozen=True)
class DetectResult:
    """The new state, the anomalies decided, and the alert state after the last sample."""

    key: int
    state: bytes
    findings: tuple[Finding, ...]
    trained: int  # samples learned without decisions (a new series' history)
    scored: int
    last_ts: float | None
    first_ts: float | None
    n_seen: int
    alert: OpenAlert | None
    last_probability: float


def _num(v: float) -> float | None:
    return float(v) if np.isfinite(v) else None


def new_model(spec: Mapping[str, Any], th: ThresholdSettings) -> SeriesModel:
    detector = DETECTORS.build(dict(spec))
    return SeriesModel(spec=dict(spec), detector=detector,
                       thresholder=Thresholder(threshold=th.threshold, refractory_s=th.refractory_s, clear=th.clear))


def load_model(state: bytes | None, spec: Mapping[str, Any], th: ThresholdSettings) -> SeriesModel:
    """The series' model from its state bytes; a new one when there is none or the spec changed."""
    if state is not None:
        model = pickle.loads(state)  # states are written by this engine only
        if isinstance(model, SeriesModel) and model.spec == dict(spec):
            return model
    return new_model(spec, th)


def detect_series(task: DetectTask) -> DetectResult:
    """Train (new series) or score and decide the task's samples; see the module docstring."""
    th = task.threshold
    model = load_model(task.state, task.spec, th)
    model.thresholder.threshold = th.threshold
    model.thresholder.refractory_s = th.refractory_s
    model.thresholder.clear = th.clear
    ts = np.asarray(task.ts, dtype=np.float64)
    values = np.asarray(task.values, dtype=np.float64)
    keep = ts > model.last_ts if model.last_ts is not None else np.ones(ts.shape[0], dtype=bool)
    ts, values = ts[keep], values[keep]
    findings: list[Finding] = []
    trained = scored = 0
    if ts.shape[0]:
        if model.last_ts is None:
            trained = _train(model, ts, values)
        else:
            findings = _score(model, ts, values, task)
            scored = int(ts.shape[0])
        model.last_ts = float(ts[-1])
        if model.first_ts is None:
            model.first_ts = float(ts[0])
        model.n_seen += int(ts.shape[0])
    return DetectResult(key=task.key, state=pickle.dumps(model, protocol=5), findings=tuple(findings),
                        trained=trained, scored=scored, last_ts=model.last_ts, first_ts=model.first_ts,
                        n_seen=model.n_seen, alert=model.alert, last_probability=model.last_probability)


def _train(model: SeriesModel, ts: FloatArray, values: FloatArray) -> int:
    """Learn the history of a new series (the vectorised path; the scores of the past are not decided)."""
    from opsmind.core import Frame

    stamps = np.rint(ts * 1e9).astype(np.int64).astype("datetime64[ns]")
    model.detector.score(Frame(stamps, values[:, None], ("value",)))
    return int(ts.shape[0])


def _score(model: SeriesModel, ts: FloatArray, values: FloatArray, task: DetectTask) -> list[Finding]:
    det, th = model.detector, model.thresholder
    hist_t = list(np.asarray(task.context_ts, dtype=np.float64)[-32:])
    hist_v = list(np.asarray(task.context_values, dtype=np.float64)[-32:])
    clear = th.clear if th.clear is not None else th.threshold
    out: list[Finding] = []
    for t, x in zip(ts.tolist(), values.tolist(), strict=True):
        p = float(det.score_one(t, x)) if np.isfinite(x) else 0.0
        if np.isfinite(x):
            if p < PROTECT:
                det.learn_one(t, x)
                model.protected = 0
            elif model.protected >= MAX_PROTECTED:  # a lasting change: learned until it no longer looks anomalous
                det.learn_one(t, x)
            else:
                model.protected += 1
        decision = th.process_one(t, p)
        model.last_probability = p
        if p >= th.threshold:
            model.last_high = t
        if decision.is_anomaly:
            window = (hist_t[0] if hist_t else t, t)
            with np.errstate(all="ignore"):
                base = float(np.nanmedian(hist_v)) if hist_v else float("nan")
            sev = decision.severity or "low"
            out.append(Finding(ts=t, value=x, probability=p, severity=sev, baseline=base, window=window,
                               threshold=th.threshold))
            model.alert = OpenAlert(started_at=t, severity=sev, probability=p)
        elif model.alert is not None and (p < min(clear, th.threshold) or model.last_high is None
                                          or t - model.last_high > task.threshold.resolve_after_s):
            model.alert = None
        if p < PROTECT:  # the baseline is what normal looked like: anomalous samples stay out of it
            hist_t.append(t)
            hist_v.append(x)
            if len(hist_t) > 32:
                del hist_t[0], hist_v[0]
    return out


def exit_with_parent(parent: int, every_s: float = 1.0) -> None:
    """Run in each worker of the process pool: exit once the engine's process is gone. A pool shut down by the
    engine ends its workers itself, but after a ``kill -9`` a worker would wait on its task queue forever (it holds
    both ends of the queue's pipe, so it never reads an end of file)."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(every_s)
        os._exit(0)

    threading.Thread(target=watch, name="opsmind-parent-watch", daemon=True).start()
