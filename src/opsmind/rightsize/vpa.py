"""The Kubernetes VPA recommender's formulas (``vpa``), reimplemented from its documented behaviour.

What it does (VPA recommender defaults, vertical-pod-autoscaler/pkg/recommender):

- CPU: every usage sample goes into a *decaying histogram* with exponential buckets (first bucket 0.01 core,
  each 5 % wider than the last, up to 1000 cores), weighted by ``max(CPU request, 0.1 core)`` times
  ``2 ** ((t - t0) / half_life)`` (half-life 24 h): a day-old sample counts half as much as a fresh one.
  Usage is read in whole millicores, as VPA stores it.
- Memory: one sample per container per 24 h aggregation interval, the *peak* working set of that interval,
  timed at the interval's end, into the same kind of histogram (first bucket 10 MB, up to 1 TB).
  An OOM kill adds the bumped-up usage ``max(used * 1.2, used + 100 MiB)`` as the interval's peak, where
  ``used = max(memory request, the interval's peak so far)``.
- Percentiles return the *end* of the bucket where the cumulative weight reaches the percentile.
- Target = P90 (CPU and memory) + 15 % safety margin; lower bound = P50 + margin, scaled by
  ``(1 + 0.001 / confidence) ** -2``; upper bound = P95 + margin, scaled by ``1 + 1 / confidence``, where
  ``confidence = min(days between first and last CPU sample, CPU samples / 1440)``.
- Every estimate is at least the pod minimum (25 millicores, 250 MiB), spread over the containers of the pod.
- Amounts are integers (millicores, bytes) truncated at each step, as VPA's ``ResourceAmount`` is.
- Limits: VPA keeps the current limit-to-request ratio; with no current limit it sets none.

Departures, all for data VPA would not see: a container without memory samples gets no memory recommendation
(VPA would fall back to its 250 MiB minimum); OOM kills are attributed to the pod with the highest memory in
that interval; only the last ``history_length`` (8 days, VPA's Prometheus history default) is used.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, ClassVar

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, BeforeValidator, Field

from opsmind.core import FloatArray
from opsmind.rightsize.base import (
    MIB,
    RECOMMENDERS,
    Recommendation,
    Recommender,
    Undefined,
    WorkloadUsage,
)
from opsmind.sources.timeparse import parse_duration

__all__ = ["DecayingHistogram", "ExponentialBuckets", "VPARecommender", "VPASettings"]

DurationS = Annotated[float, BeforeValidator(parse_duration)]
MAX_RESOURCE_AMOUNT = 1e14


@dataclass(frozen=True)
class ExponentialBuckets:
    """VPA's exponential histogram options: bucket ``n >= 1`` starts at ``first * (ratio**n - 1) / (ratio - 1)``.

    Examples
    --------
    >>> b = ExponentialBuckets(1000.0, 0.01, 1.05)
    >>> b.num_buckets, int(b.find(np.array([0.005, 1.0]))[1]), round(b.start(37), 6)
    (176, 36, 1.016281)
    """

    max_value: float
    first: float
    ratio: float
    epsilon: float = 0.0001

    @property
    def num_buckets(self) -> int:
        return math.ceil(math.log(self.max_value * (self.ratio - 1) / self.first + 1) / math.log(self.ratio)) + 1

    def find(self, values: FloatArray) -> npt.NDArray[np.int64]:
        """Bucket index of each value (values below the first bucket size go to bucket 0)."""
        v = np.asarray(values, dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            b = np.floor(np.log(v * (self.ratio - 1) / self.first + 1) / math.log(self.ratio))
        b = np.where(v < self.first, 0, b)
        return np.clip(b, 0, self.num_buckets - 1).astype(np.int64)

    def start(self, bucket: int) -> float:
        if bucket == 0:
            return 0.0
        return self.first * (self.ratio**bucket - 1) / (self.ratio - 1)


CPU_BUCKETS = ExponentialBuckets(1000.0, 0.01, 1.05)
MEMORY_BUCKETS = ExponentialBuckets(1e12, 1e7, 1.05)


class DecayingHistogram:
    """A weighted histogram over :class:`ExponentialBuckets` whose sample weights double every ``half_life_s``.

    Only relative weights matter, so weights are taken relative to the first sample added.

    Examples
    --------
    >>> h = DecayingHistogram(CPU_BUCKETS, 86400.0)
    >>> h.add(np.array([1.0, 2.0]), np.array([1.0, 1.0]), np.array([0.0, 86400.0]))
    >>> round(h.percentile(0.3), 4), round(h.percentile(0.5), 4)  # the newer 2.0 weighs twice the older 1.0
    (1.0163, 2.0935)
    """

    def __init__(self, buckets: ExponentialBuckets, half_life_s: float) -> None:
        self.buckets = buckets
        self.half_life_s = float(half_life_s)
        self.weights = np.zeros(buckets.num_buckets)
        self.reference_s: float | None = None

    def add(self, values: FloatArray, weights: FloatArray, times_s: FloatArray) -> None:
        if values.size == 0:
            return
        if self.reference_s is None:
            self.reference_s = float(np.min(times_s))
        decay = np.exp2((np.asarray(times_s, dtype=np.float64) - self.reference_s) / self.half_life_s)
        idx = self.buckets.find(values)
        self.weights += np.bincount(idx, weights=weights * decay, minlength=self.weights.size)

    @property
    def total(self) -> float:
        return float(self.weights.sum())

    def is_empty(self) -> bool:
        return not np.any(self.weights >= self.buckets.epsilon)

    def percentile(self, p: float) -> float:
        """VPA's ``Percentile``: the end of the bucket where the cumulative weight reaches ``p`` (0 if empty)."""
        nonempty = np.flatnonzero(self.weights >= self.buckets.epsilon)
        if nonempty.size == 0:
            return 0.0
        lo, hi = int(nonempty[0]), int(nonempty[-1])
        threshold = p * self.total
        cum = np.cumsum(self.weights[lo:hi])
        hit = np.flatnonzero(cum >= threshold)
        bucket = lo + int(hit[0]) if hit.size else hi
        if bucket < self.buckets.num_buckets - 1:
            return self.buckets.start(bucket + 1)
        return self.buckets.start(bucket)


class VPASettings(BaseModel):
    """The VPA recommender's flags and constants (defaults are VPA's)."""

    target_cpu_percentile: float = Field(0.9, gt=0, le=1, description="CPU usage percentile for the target.")
    lower_bound_cpu_percentile: float = Field(0.5, gt=0, le=1, description="CPU percentile for the lower bound.")
    upper_bound_cpu_percentile: float = Field(0.95, gt=0, le=1, description="CPU percentile for the upper bound.")
    target_memory_percentile: float = Field(0.9, gt=0, le=1, description="Memory peak percentile for the target.")
    lower_bound_memory_percentile: float = Field(0.5, gt=0, le=1, description="Memory percentile, lower bound.")
    upper_bound_memory_percentile: float = Field(0.95, gt=0, le=1, description="Memory percentile, upper bound.")
    safety_margin_fraction: float = Field(0.15, ge=0, description="Fraction added to every estimate.")
    pod_min_cpu_millicores: float = Field(25.0, ge=0, description="Minimum CPU recommendation for a pod.")
    pod_min_memory_mb: float = Field(250.0, ge=0, description="Minimum memory recommendation for a pod (MiB).")
    containers_per_pod: int = Field(1, ge=1, description="Containers the pod minimums are spread over.")
    cpu_half_life: DurationS = Field(86400.0, gt=0, description="Half-life of CPU sample weights (e.g. 24h).")
    memory_half_life: DurationS = Field(86400.0, gt=0, description="Half-life of memory peak weights.")
    memory_aggregation_interval: DurationS = Field(86400.0, gt=0, description="One memory peak per interval.")
    confidence_interval: DurationS = Field(86400.0, gt=0, description="Unit of history for the confidence.")
    history_length: DurationS = Field(8 * 86400.0, gt=0, description="History used (VPA's Prometheus default).")
    oom_bump_up_ratio: float = Field(1.2, ge=1, description="Memory after an OOM kill: at least usage times this.")
    oom_min_bump_up_bytes: float = Field(100 * MIB, ge=0, description="...and at least usage plus this (bytes).")


def _amount(x: float) -> int:
    """VPA's ``resourceAmountFromFloat``: truncate toward zero, clamp to [0, 1e14]."""
    if not x >= 0:
        return 0
    if x > MAX_RESOURCE_AMOUNT:
        return int(MAX_RESOURCE_AMOUNT)
    return int(x)


@RECOMMENDERS.register("vpa")
class VPARecommender(Recommender):
    """VPA-compatible recommendations (see the module docstring)."""

    Settings: ClassVar[type[BaseModel]] = VPASettings
    settings: VPASettings

    def _recommend(self, data: WorkloadUsage) -> Recommendation | Undefined:
        s = self.settings
        t_all, _ = data.cpu_samples()
        end = float(t_all[-1])
        data = data.window(end - s.history_length + 1e-9, None)
        t, cpu = data.cpu_samples()
        if t.size == 0:
            return Undefined(data.name, self.name, "no CPU samples in the history window")
        request = data.current.cpu_request or 0.0
        cpu_hist = DecayingHistogram(CPU_BUCKETS, s.cpu_half_life)
        usage = np.floor(cpu * 1000.0 + 1e-9) / 1000.0  # whole millicores, as VPA stores samples
        cpu_hist.add(usage, np.full(usage.shape, max(_amount(request * 1000.0) / 1000.0, 0.1)), t)
        life_days = (t[-1] - t[0]) / s.confidence_interval
        samples_days = t.size / (s.confidence_interval / 60.0)
        confidence = min(life_days, samples_days)

        fraction = 1.0 / s.containers_per_pod
        min_cpu = _amount(_amount(s.pod_min_cpu_millicores * 0.001 * 1000.0) * fraction)
        min_mem = _amount(_amount(s.pod_min_memory_mb * MIB) * fraction)

        def estimate(hist: DecayingHistogram, p: float, scale: float, mult: float | None, exp: float,
                     minimum: int) -> int:
            base = _amount(hist.percentile(p) * scale)
            base = base + _amount(base * s.safety_margin_fraction)
            if mult is not None:
                factor = math.inf if confidence <= 0 else (1.0 + mult / confidence) ** exp
                base = _amount(base * factor) if math.isfinite(factor) else (0 if exp < 0 else _amount(math.inf))
            return max(base, minimum)

        cpu_target = estimate(cpu_hist, s.target_cpu_percentile, 1000.0, None, 1.0, min_cpu)
        cpu_lower = estimate(cpu_hist, s.lower_bound_cpu_percentile, 1000.0, 0.001, -2.0, min_cpu)
        cpu_upper = estimate(cpu_hist, s.upper_bound_cpu_percentile, 1000.0, 1.0, 1.0, min_cpu)
        notes: list[str] = []
        mem_target = mem_lower = mem_upper = None
        peaks_n = 0
        if data.memory is not None and np.isfinite(data.memory.values).any():
            mem_hist, peaks_n, oom_used = self._memory_histogram(data)
            mem_target = estimate(mem_hist, s.target_memory_percentile, 1.0, None, 1.0, min_mem)
            mem_lower = estimate(mem_hist, s.lower_bound_memory_percentile, 1.0, 0.001, -2.0, min_mem)
            mem_upper = estimate(mem_hist, s.upper_bound_memory_percentile, 1.0, 1.0, 1.0, min_mem)
            if oom_used:
                notes.append(f"{oom_used} OOM kill(s) added as bumped-up memory peaks")
        else:
            notes.append("memory: undefined, because there are no memory (working set) samples")
        cur = data.current
        cpu_limit = mem_limit = None
        if cur.cpu_limit and cur.cpu_request:
            cpu_limit = cpu_target / 1000.0 * cur.cpu_limit / cur.cpu_request
        if mem_target is not None and cur.memory_limit and cur.memory_request:
            mem_limit = mem_target * cur.memory_limit / cur.memory_request
        return Recommendation(
            workload=data.name, strategy=self.name,
            cpu_request=cpu_target / 1000.0, cpu_limit=cpu_limit,
            memory_request=None if mem_target is None else float(mem_target), memory_limit=mem_limit,
            confidence=min(1.0, confidence / 7.0),
            reason=f"P{s.target_cpu_percentile * 100:g} of decayed CPU usage + {s.safety_margin_fraction:.0%} "
                   f"(VPA recommender formulas)",
            evidence={
                "cpu_lower_bound": cpu_lower / 1000.0, "cpu_upper_bound": min(cpu_upper / 1000.0, 1e11),
                "memory_lower_bound": mem_lower, "memory_upper_bound": mem_upper,
                "confidence_days": round(float(confidence), 4), "cpu_samples": int(t.size), "memory_peaks": peaks_n,
            },
            notes=tuple(notes),
        )

    def _memory_histogram(self, data: WorkloadUsage) -> tuple[DecayingHistogram, int, int]:
        s = self.settings
        assert data.memory is not None
        hist = DecayingHistogram(MEMORY_BUCKETS, s.memory_half_life)
        t = data.memory.seconds()
        interval = s.memory_aggregation_interval
        peaks_t: list[FloatArray] = []
        peaks_v: list[FloatArray] = []
        windows: list[tuple[FloatArray, FloatArray, FloatArray]] = []
        for j in range(data.memory.ndim):
            v = data.memory.values[:, j]
            ok = np.isfinite(v)
            if not ok.any():
                continue
            tj, vj = t[ok], np.floor(v[ok])
            k = np.floor((tj - tj[0]) / interval).astype(np.int64)
            uniq, first = np.unique(k, return_index=True)
            window_peak = np.maximum.reduceat(vj, first)
            ends = tj[0] + (uniq + 1) * interval
            windows.append((tj, vj, ends))
            peaks_t.append(ends)
            peaks_v.append(window_peak.astype(np.float64))
        oom_used = 0
        for kill in data.oom_kills:
            best: tuple[float, int, int] | None = None
            for j, (tj, vj, ends) in enumerate(windows):
                w = int(np.searchsorted(ends, kill, side="right"))
                if w >= ends.size or kill < ends[w] - interval:
                    continue
                so_far = vj[(tj >= ends[w] - interval) & (tj <= kill)]
                seen = float(so_far.max()) if so_far.size else 0.0
                if best is None or seen > best[0]:
                    best = (seen, j, w)
            if best is None:
                continue
            seen, j, w = best
            used = max(float(data.current.memory_request or 0.0), seen)
            bumped = float(max(_amount(used + s.oom_min_bump_up_bytes), _amount(used * s.oom_bump_up_ratio)))
            peaks_v[j][w] = max(peaks_v[j][w], bumped)
            oom_used += 1
        if peaks_t:
            pt, pv = np.concatenate(peaks_t), np.concatenate(peaks_v)
            hist.add(pv, np.ones(pv.shape), pt)
        return hist, int(sum(p.size for p in peaks_t)), oom_used
