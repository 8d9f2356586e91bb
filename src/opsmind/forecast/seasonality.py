"""Automatic seasonality detection: which of the daily and weekly cycles a series actually has.

For each candidate period ``p`` (in steps; daily first, then weekly) the series, with gaps interpolated, is
detrended by a centred moving average over ``p`` steps, the seasonal profiles already accepted are removed
(median per phase), and the autocorrelation of what remains is measured at lag ``p``. The period is accepted when
that autocorrelation reaches ``threshold``. A period needs ``min_cycles`` full cycles of history; otherwise the
notes say how much history it needs and how much there is.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd

from opsmind.core import FloatArray
from opsmind.forecast.base import fmt_duration

__all__ = ["CANDIDATES", "detect_periods", "fill_gaps", "seasonal_strength"]

CANDIDATES: tuple[tuple[str, float], ...] = (("daily", 86400.0), ("weekly", 604800.0))


def fill_gaps(y: FloatArray, periods: Sequence[int] = ()) -> FloatArray:
    """A copy of ``y`` with NaN filled; constant extension at both ends.

    Without ``periods``: linear interpolation. With periods (in steps): the seasonal profiles (median per phase
    of the detrended series) are removed, the rest is interpolated linearly and the profiles are added back, so
    a gap of a day in a daily-periodic series is filled with a day-shaped curve rather than a straight line.
    """
    out = np.asarray(y, dtype=np.float64).copy()
    ok = np.isfinite(out)
    if ok.all() or not ok.any():
        return out
    idx = np.arange(out.size)
    linear = out.copy()
    linear[~ok] = np.interp(idx[~ok], idx[ok], out[ok])
    usable = [p for p in periods if p >= 2 and out.size >= 2 * p]
    if not usable:
        return linear
    seasonal = np.zeros(out.size)
    rest = np.where(ok, out, np.nan)
    for p in sorted(usable):
        trend = pd.Series(linear - seasonal).rolling(p, center=True, min_periods=1).mean().to_numpy()
        prof = _phase_profile(rest - trend, p)
        seasonal += prof
        rest = rest - prof
    deseason = np.where(ok, out - seasonal, np.nan)
    deseason[~ok] = np.interp(idx[~ok], idx[ok], deseason[ok])
    out[~ok] = deseason[~ok] + seasonal[~ok]
    return out


def _phase_profile(r: FloatArray, p: int) -> FloatArray:
    """Median of ``r`` per phase ``i % p``, repeated over the length of ``r``."""
    n = r.size
    k = -(-n // p)
    padded = np.full(k * p, np.nan)
    padded[:n] = r
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a phase with no observation gives NaN, set to 0
        prof = np.nanmedian(padded.reshape(k, p), axis=0)
    prof = np.where(np.isfinite(prof), prof, 0.0)
    return np.tile(prof, k)[:n]


def _lag_corr(r: FloatArray, lag: int) -> float:
    a, b = r[lag:], r[:-lag]
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3:
        return 0.0
    a, b = a[ok], b[ok]
    sa, sb = a.std(), b.std()
    if sa <= 0 or sb <= 0:
        return 0.0
    return float(np.mean((a - a.mean()) * (b - b.mean())) / (sa * sb))


def seasonal_strength(values: FloatArray, period: int, remove: Sequence[int] = ()) -> float:
    """Autocorrelation at lag ``period`` after detrending and removing the profiles of ``remove`` periods."""
    y = fill_gaps(np.asarray(values, dtype=np.float64))
    if period < 2 or y.size < 2 * period or not np.isfinite(y).all():
        return 0.0
    trend = pd.Series(y).rolling(period, center=True, min_periods=max(1, period // 2)).mean().to_numpy()
    r = y - trend
    for q in remove:
        r = r - _phase_profile(r, q)
    return _lag_corr(r, period)


def detect_periods(
    values: FloatArray,
    step_s: float,
    *,
    candidates: Sequence[tuple[str, float]] = CANDIDATES,
    min_cycles: float = 2.0,
    threshold: float = 0.3,
) -> tuple[tuple[int, ...], list[str]]:
    """The seasonal periods (in steps, ascending) the series shows, and notes explaining each decision.

    Examples
    --------
    >>> t = np.arange(14 * 288)
    >>> y = 10 + np.sin(2 * np.pi * t / 288) + np.random.default_rng(0).normal(0, 0.2, t.size)
    >>> detect_periods(y, 300.0)[0]
    (288,)
    """
    y = np.asarray(values, dtype=np.float64)
    n_finite = int(np.isfinite(y).sum())
    have = fmt_duration(y.size * step_s)
    accepted: list[int] = []
    notes: list[str] = []
    if n_finite and np.nanstd(y) == 0:
        return (), ["the series is constant: no seasonality"]
    for name, seconds in candidates:
        p = round(seconds / step_s)
        if p < 2:
            notes.append(f"{name} seasonality: the step ({fmt_duration(step_s)}) is too coarse to see it")
            continue
        need = min_cycles * p
        if y.size < need:
            notes.append(f"not enough history for {name} seasonality: need {fmt_duration(need * step_s)}, "
                         f"have {have}")
            continue
        strength = seasonal_strength(y, p, accepted)
        if strength >= threshold:
            accepted.append(p)
            notes.append(f"{name} seasonality found (period {p} steps, lag autocorrelation {strength:.2f})")
        else:
            notes.append(f"no {name} seasonality (lag autocorrelation {strength:.2f} < {threshold:g})")
    return tuple(accepted), notes
