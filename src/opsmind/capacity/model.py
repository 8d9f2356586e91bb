"""Capacity estimation from observed metrics, what-if questions, and SLO-breach prediction from a load forecast.

The model of a service is M/M/c (:mod:`opsmind.capacity.queueing`): ``c`` replicas, each serving ``mu`` requests
per second. :func:`estimate_capacity` finds ``mu`` from what a service already exports:

* with a utilisation (or CPU busy share) series: ``mu = throughput / (replicas * utilisation)`` per sample, the
  median over samples with utilisation between 5 % and 95 %;
* otherwise from latency: per sample, the ``mu`` at which the model's mean (or p95/p99) response time equals the
  observed one at the observed throughput and replicas; the median over samples.

:func:`what_if` answers "what latency and SLO compliance at this load and replica count" by the model (load testing
without generating load); :func:`predict_breach` turns a load forecast into "when will latency or utilisation cross
the SLO, and how sure are we", 5 to 60 minutes ahead.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

import numpy as np
import numpy.typing as npt
from scipy.optimize import brentq
from scipy.stats import norm

from opsmind.capacity.queueing import (
    MMc,
    max_rate_for_slo,
    mean_response,
    replicas_for_slo,
    response_quantile,
)
from opsmind.core import ConfigError, DataError

__all__ = [
    "BreachPrediction",
    "CapacityEstimate",
    "LoadForecast",
    "WhatIf",
    "estimate_capacity",
    "predict_breach",
    "what_if",
]

LatencyStat = Literal["mean", "p95", "p99"]
_Q = {"p95": 0.95, "p99": 0.99}
_MAX_SAMPLES = 2000  # latency inversion is a root search per sample; a spread subsample is plenty for a median


@dataclass(frozen=True)
class CapacityEstimate:
    """Per-replica service rate ``mu`` (req/s) and the evidence behind it."""

    mu: float
    method: str
    samples: int
    spread: tuple[float, float]  # the 25th and 75th percentile of the per-sample estimates
    notes: tuple[str, ...] = field(default=())

    @property
    def service_time_s(self) -> float:
        return 1.0 / self.mu


def _arrays(throughput: npt.ArrayLike, replicas: npt.ArrayLike, *others: npt.ArrayLike | None,
            where: str) -> list[npt.NDArray[np.float64]]:
    arrs = [np.asarray(throughput, dtype=np.float64).ravel(), np.asarray(replicas, dtype=np.float64).ravel()]
    arrs += [np.asarray(o, dtype=np.float64).ravel() for o in others if o is not None]
    if len({len(a) for a in arrs}) != 1:
        raise DataError(f"capacity: series of different lengths {[len(a) for a in arrs]}", where=where)
    if len(arrs[0]) == 0:
        raise DataError("capacity: no samples", where=where)
    return arrs


def estimate_capacity(
    throughput: npt.ArrayLike,
    replicas: npt.ArrayLike,
    *,
    utilisation: npt.ArrayLike | None = None,
    latency_s: npt.ArrayLike | None = None,
    latency_stat: LatencyStat = "mean",
    concurrency: int = 1,
    where: str = "data",
) -> CapacityEstimate:
    """Estimate the per-replica service rate from throughput (req/s, whole service), replicas, and either a
    utilisation series (0-1) or a latency series (seconds, the statistic named by ``latency_stat``).

    ``concurrency`` is the number of requests one replica serves at once (worker threads or processes): the queue
    then has ``replicas * concurrency`` servers, each at ``mu / concurrency``. It matters for latency (a replica of
    8 workers at 16 ms each serves 500 req/s, but each request still takes 16 ms), not for utilisation."""
    if concurrency < 1:
        raise ConfigError(f"estimate_capacity: concurrency must be >= 1, got {concurrency}")
    if utilisation is None and latency_s is None:
        raise ConfigError("estimate_capacity: give a utilisation or a latency series (or both)")
    notes: list[str] = []
    if utilisation is not None:
        lam, c, u = _arrays(throughput, replicas, utilisation, where=where)
        ok = np.isfinite(lam) & np.isfinite(c) & np.isfinite(u) & (lam > 0) & (c >= 1) & (u >= 0.05) & (u <= 0.95)
        if ok.sum() >= 3:
            rates = lam[ok] / (c[ok] * u[ok])
            if int((~ok).sum()):
                notes.append(f"{int((~ok).sum())} samples skipped (missing, idle below 5 % or saturated above 95 %)")
            return CapacityEstimate(mu=float(np.median(rates)), method="utilisation", samples=int(ok.sum()),
                                    spread=(float(np.percentile(rates, 25)), float(np.percentile(rates, 75))),
                                    notes=tuple(notes))
        notes.append(f"utilisation usable in only {int(ok.sum())} samples (need 3 between 5 % and 95 %)")
        if latency_s is None:
            raise DataError("capacity: " + notes[-1] + ", and no latency series to fall back on", where=where)
        notes.append("using latency instead")
    assert latency_s is not None
    lam, c, lat = _arrays(throughput, replicas, latency_s, where=where)
    ok = np.isfinite(lam) & np.isfinite(c) & np.isfinite(lat) & (lam > 0) & (c >= 1) & (lat > 0)
    if ok.sum() < 3:
        raise DataError(f"capacity: need 3 samples with throughput > 0, replicas >= 1 and latency > 0, have "
                        f"{int(ok.sum())}", where=where)
    idx = np.flatnonzero(ok)
    if len(idx) > _MAX_SAMPLES:
        idx = idx[np.linspace(0, len(idx) - 1, _MAX_SAMPLES).astype(int)]
    per: list[float] = []
    for i in idx:
        mu = _invert_latency(float(lam[i]), round(float(c[i])) * concurrency, float(lat[i]), latency_stat)
        if mu is not None:
            per.append(mu * concurrency)
    skipped = len(idx) - len(per)
    if skipped:
        notes.append(f"{skipped} samples skipped: their latency is not explained by queueing at that load")
    if len(per) < 3:
        raise DataError("capacity: latency does not fit an M/M/c model in enough samples (need 3)", where=where)
    arr = np.asarray(per)
    return CapacityEstimate(mu=float(np.median(arr)), method=f"latency ({latency_stat})", samples=len(per),
                            spread=(float(np.percentile(arr, 25)), float(np.percentile(arr, 75))), notes=tuple(notes))


def _latency_at(lam: float, mu: float, c: int, stat: LatencyStat) -> float:
    if stat == "mean":
        return float(mean_response(lam, mu, c))
    return float(response_quantile(_Q[stat], lam, mu, c))


def _invert_latency(lam: float, c: int, observed: float, stat: LatencyStat) -> float | None:
    """The ``mu`` whose model latency at (lam, c) equals ``observed``; latency falls as ``mu`` grows."""
    lo = lam / c * (1.0 + 1e-9)  # just stable: latency is unbounded here
    hi = lo * 2.0 + 1.0
    for _ in range(200):
        if _latency_at(lam, hi, c, stat) < observed:
            break
        hi *= 2.0
    else:
        return None
    if _latency_at(lam, lo, c, stat) < observed:
        return None
    return float(brentq(lambda m: _latency_at(lam, m, c, stat) - observed, lo, hi, rtol=1e-10))


@dataclass(frozen=True)
class WhatIf:
    """The model's answer for one load and replica count."""

    load_rps: float
    replicas: int
    mu: float
    utilisation: float
    mean_s: float
    p95_s: float
    p99_s: float
    slo_latency_s: float | None
    slo_quantile: float
    breach_probability: float | None  # share of requests slower than the SLO latency
    compliant: bool | None
    replicas_needed: int | None
    notes: tuple[str, ...] = field(default=())


def what_if(load_rps: float, replicas: int, mu: float, *, slo_latency_s: float | None = None,
            slo_quantile: float = 0.95, max_utilisation: float = 1.0, concurrency: int = 1) -> WhatIf:
    """Latency quantiles and SLO compliance at ``load_rps`` with ``replicas`` replicas of rate ``mu`` (req/s each,
    served by ``concurrency`` workers per replica)."""
    if not math.isfinite(load_rps) or load_rps < 0:
        raise ConfigError(f"what-if: the load must be a number >= 0 req/s, got {load_rps}")
    if concurrency < 1:
        raise ConfigError(f"what-if: concurrency must be >= 1, got {concurrency}")
    q = MMc(load_rps, mu / concurrency, replicas * concurrency)
    notes: list[str] = []
    if not q.stable:
        notes.append(f"overloaded: utilisation {q.utilisation:.0%} >= 100 %, the queue grows without bound")
    breach = compliant = needed = None
    if slo_latency_s is not None:
        breach = q.tail(slo_latency_s)
        compliant = q.stable and q.quantile(slo_quantile) <= slo_latency_s and q.utilisation <= max_utilisation
        try:
            servers = replicas_for_slo(load_rps, mu / concurrency, slo_latency_s, slo_quantile, max_utilisation)
            needed = math.ceil(servers / concurrency)
        except ConfigError as exc:
            notes.append(str(exc))
    return WhatIf(load_rps=load_rps, replicas=replicas, mu=mu, utilisation=q.utilisation, mean_s=q.mean_response,
                  p95_s=q.quantile(0.95), p99_s=q.quantile(0.99), slo_latency_s=slo_latency_s,
                  slo_quantile=slo_quantile, breach_probability=breach, compliant=compliant, replicas_needed=needed,
                  notes=tuple(notes))


class LoadForecast(Protocol):
    """What :func:`predict_breach` needs of a forecast (:class:`opsmind.forecast.base.Forecast` has it)."""

    @property
    def timestamps(self) -> npt.NDArray[np.datetime64]: ...

    @property
    def mean(self) -> npt.NDArray[np.float64]: ...

    def upper(self, level: int) -> npt.NDArray[np.float64]: ...


@dataclass(frozen=True)
class BreachPrediction:
    """When the forecast load first crosses what the current replicas can serve within the SLO."""

    breach: bool
    at: np.datetime64 | None
    minutes_ahead: float | None
    probability: float  # at ``at`` when a breach is predicted, else the largest over the window
    bottleneck: Literal["latency", "utilisation"]
    limit_rps: float  # the load at which the SLO breaks with the current replicas
    replicas_needed: int | None  # to serve the window's peak upper-bound load within the SLO
    explanation: str
    notes: tuple[str, ...] = field(default=())


def predict_breach(
    forecast: LoadForecast,
    *,
    now: np.datetime64,
    mu: float,
    replicas: int,
    slo_latency_s: float,
    slo_quantile: float = 0.95,
    max_utilisation: float = 0.85,
    min_probability: float = 0.5,
    window_minutes: Sequence[float] = (5.0, 60.0),
    level: int = 95,
) -> BreachPrediction:
    """Predict whether, when and how surely the SLO breaks within ``window_minutes`` after ``now``.

    The load at each forecast step is taken as normal with the forecast mean and the spread implied by the
    ``level`` % upper bound (a one-sided reading of the interval). The SLO breaks when the load exceeds the lower of
    two limits for the current replicas: the rate at which the ``slo_quantile`` latency reaches ``slo_latency_s``
    (M/M/c), and ``max_utilisation`` of capacity. A breach is reported at the first step whose probability reaches
    ``min_probability``.
    """
    ts = np.asarray(forecast.timestamps, dtype="datetime64[ns]")
    mean = np.asarray(forecast.mean, dtype=np.float64)
    upper = np.asarray(forecast.upper(level), dtype=np.float64)
    if len(ts) == 0:
        raise DataError("breach prediction: the forecast is empty", where="forecast")
    if not 0 < min_probability < 1:
        raise ConfigError(f"breach prediction: min_probability must be in (0, 1), got {min_probability}")
    lo_min, hi_min = window_minutes
    ahead = (ts - np.asarray(now, dtype="datetime64[ns]")).astype("timedelta64[ns]").astype(np.float64) / 60e9
    in_window = (ahead >= lo_min) & (ahead <= hi_min) & np.isfinite(mean)
    notes: list[str] = []
    if not in_window.any():
        raise DataError(f"breach prediction: the forecast has no step {lo_min:g}-{hi_min:g} min after now "
                        f"(it covers {ahead.min():.0f} to {ahead.max():.0f} min)", where="forecast")
    lat_limit = max_rate_for_slo(mu, replicas, slo_latency_s, slo_quantile)
    util_limit = max_utilisation * replicas * mu
    bottleneck: Literal["latency", "utilisation"] = "latency" if lat_limit <= util_limit else "utilisation"
    limit = min(lat_limit, util_limit)
    z = float(norm.ppf(0.5 + level / 200.0))
    sigma = np.maximum((upper - mean) / z, 1e-12 * np.maximum(np.abs(mean), 1.0))
    prob = norm.sf((limit - mean) / sigma)
    prob = np.where(in_window, prob, 0.0)
    peak = float(np.nanmax(np.where(in_window, upper, -np.inf)))
    try:
        needed: int | None = replicas_for_slo(max(peak, 0.0), mu, slo_latency_s, slo_quantile, max_utilisation)
    except ConfigError as exc:
        needed = None
        notes.append(str(exc))
    hit = np.flatnonzero(prob >= min_probability)
    what = (f"p{slo_quantile * 100:g} latency above {slo_latency_s * 1000:g} ms" if bottleneck == "latency"
            else f"utilisation above {max_utilisation:.0%}")
    if len(hit):
        i = int(hit[0])
        expl = (f"SLO breach predicted in {ahead[i]:.0f} min (probability {prob[i]:.0%}): forecast load "
                f"{mean[i]:.4g} req/s (upper {level} % {upper[i]:.4g}) vs {limit:.4g} req/s that {replicas} replicas "
                f"of {mu:.4g} req/s serve before {what}; {needed} replicas needed for the window's peak")
        return BreachPrediction(True, ts[i], float(ahead[i]), float(prob[i]), bottleneck, limit, needed, expl,
                                tuple(notes))
    j = int(np.argmax(prob))
    expl = (f"no SLO breach expected {lo_min:g}-{hi_min:g} min ahead: highest probability {prob[j]:.0%} at "
            f"{ahead[j]:.0f} min (load {mean[j]:.4g} req/s, limit {limit:.4g} req/s, bottleneck {bottleneck})")
    return BreachPrediction(False, None, None, float(prob[j]), bottleneck, limit, needed, expl, tuple(notes))
