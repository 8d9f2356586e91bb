"""Workload patterns and classes from usage alone: what kind of workload this looks like, and what follows.

Features (from the CPU usage, mean over pods per timestamp, and the memory working set when known):

- ``daily_acf`` / ``weekly_acf``: autocorrelation of the hourly means at a lag of 1 day / 7 days (needs 2 days /
  14 days of history; NaN otherwise);
- ``burst`` = P99 / P50 of CPU usage; ``cv`` = standard deviation / mean; ``idle_share`` = share of samples
  below 10 % of P99 (an on/off workload spends much of its time idle);
- ``memory_gib_per_core`` = P95 memory (GiB) / P95 CPU (cores); ``memory_cv``.

Pattern (first that applies): ``weekly`` (weekly ACF >= threshold and >= daily ACF), ``diurnal`` (daily ACF >=
threshold), ``on/off`` (idle share >= 30 % and burst >= 4), ``bursty`` (burst >= 4), ``steady`` (cv < 0.15),
else ``irregular``; ``memory-bound`` is added when memory per core >= 8 GiB.

Class (a label from metric patterns, not ground truth): memory-bound -> ``cache`` (P95 CPU < 0.25 core) or
``database``; ``on/off`` -> ``batch``; steady with P50 >= 2 cores -> ``ML/compute``; weekly or diurnal ->
``web/API``; otherwise ``microservice``. The class picks defaults (memory headroom, spot suitability).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from opsmind.core import FloatArray
from opsmind.rightsize.base import GIB, WorkloadUsage

__all__ = ["CLASS_DEFAULTS", "ClassDefaults", "Profile", "acf_at", "hourly_means", "profile"]


@dataclass(frozen=True)
class ClassDefaults:
    """What a workload class changes: memory headroom over the peak, and whether spot capacity suits it."""

    memory_headroom: float
    spot: str


CLASS_DEFAULTS: dict[str, ClassDefaults] = {
    "web/API": ClassDefaults(0.10, "suitable with >= 2 replicas and a PodDisruptionBudget"),
    "microservice": ClassDefaults(0.10, "suitable with >= 2 replicas and a PodDisruptionBudget"),
    "batch": ClassDefaults(0.10, "suitable (restartable work)"),
    "ML/compute": ClassDefaults(0.15, "suitable with checkpointing"),
    "database": ClassDefaults(0.20, "not suitable (stateful)"),
    "cache": ClassDefaults(0.20, "not suitable (stateful, cold start)"),
}


@dataclass(frozen=True)
class Profile:
    """The pattern, class and the features that decided them."""

    pattern: str
    workload_class: str
    features: dict[str, float] = field(default_factory=dict)

    @property
    def defaults(self) -> ClassDefaults:
        return CLASS_DEFAULTS[self.workload_class]

    @property
    def periodic(self) -> bool:
        return self.pattern.split("+")[0] in ("diurnal", "weekly")


def hourly_means(t: FloatArray, v: FloatArray) -> FloatArray:
    """Mean of the values in each hour from the first to the last (NaN for empty hours, then interpolated)."""
    if t.size == 0:
        return np.zeros(0)
    s = pd.Series(v, index=pd.to_datetime(t, unit="s"))
    h = s.resample("1h").mean()
    return np.asarray(h.interpolate(limit_direction="both").to_numpy(), dtype=np.float64)


def acf_at(x: FloatArray, lag: int) -> float:
    """Sample autocorrelation at ``lag`` (NaN when the series is shorter than two lags or constant).

    Examples
    --------
    >>> x = np.tile([0.0, 1.0, 2.0, 1.0], 10)
    >>> round(acf_at(x, 4), 3), round(acf_at(x, 2), 3)
    (0.9, -0.95)
    """
    x = np.asarray(x, dtype=np.float64)
    if x.size < 2 * lag or lag < 1:
        return math.nan
    d = x - x.mean()
    denom = float(np.dot(d, d))
    if denom <= 0:
        return math.nan
    return float(np.dot(d[:-lag], d[lag:]) / denom)


def _cpu_per_timestamp(data: WorkloadUsage) -> tuple[FloatArray, FloatArray]:
    vals = data.cpu.values
    ok = np.isfinite(vals).any(axis=1)
    mean: FloatArray = np.zeros(0)
    if ok.any():
        with np.errstate(invalid="ignore"):
            mean = np.asarray(np.nanmean(vals[ok], axis=1), dtype=np.float64)
    return data.cpu.seconds()[ok], mean


def profile(data: WorkloadUsage, threshold: float = 0.3) -> Profile:
    """Pattern, class and features of ``data`` (see the module docstring); ``threshold`` is the ACF cut-off."""
    t, cpu = _cpu_per_timestamp(data)
    _, flat = data.cpu_samples()
    feats: dict[str, float] = {}
    span = float(t[-1] - t[0]) if t.size > 1 else 0.0
    hourly = hourly_means(t, cpu)
    feats["daily_acf"] = acf_at(hourly, 24) if span >= 2 * 86400 else math.nan
    feats["weekly_acf"] = acf_at(hourly, 168) if span >= 14 * 86400 else math.nan
    p50, p95, p99 = (float(np.percentile(flat, q)) for q in (50, 95, 99)) if flat.size else (0.0, 0.0, 0.0)
    mean = float(flat.mean()) if flat.size else 0.0
    feats["cpu_p50"], feats["cpu_p95"], feats["cpu_p99"] = p50, p95, p99
    feats["burst"] = p99 / p50 if p50 > 0 else math.inf
    feats["cv"] = float(flat.std() / mean) if mean > 0 else math.nan
    feats["idle_share"] = float(np.mean(flat < 0.1 * p99)) if p99 > 0 else 1.0
    _, mem = data.memory_samples()
    memory_bound = False
    if mem.size:
        m95 = float(np.percentile(mem, 95))
        feats["memory_p95_gib"] = m95 / GIB
        feats["memory_gib_per_core"] = (m95 / GIB) / max(p95, 0.01)
        feats["memory_cv"] = float(mem.std() / mem.mean()) if mem.mean() > 0 else math.nan
        memory_bound = feats["memory_gib_per_core"] >= 8.0

    daily, weekly = feats["daily_acf"], feats["weekly_acf"]
    if math.isfinite(weekly) and weekly >= threshold and (not math.isfinite(daily) or weekly >= daily):
        pattern = "weekly"
    elif math.isfinite(daily) and daily >= threshold:
        pattern = "diurnal"
    elif feats["idle_share"] >= 0.3 and feats["burst"] >= 4:
        pattern = "on/off"
    elif feats["burst"] >= 4:
        pattern = "bursty"
    elif math.isfinite(feats["cv"]) and feats["cv"] < 0.15:
        pattern = "steady"
    else:
        pattern = "irregular"

    if memory_bound:
        cls = "cache" if p95 < 0.25 else "database"
    elif pattern == "on/off":
        cls = "batch"
    elif pattern == "steady" and p50 >= 2.0:
        cls = "ML/compute"
    elif pattern in ("weekly", "diurnal"):
        cls = "web/API"
    else:
        cls = "microservice"
    return Profile(pattern + ("+memory-bound" if memory_bound else ""), cls, feats)
