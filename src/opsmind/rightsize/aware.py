"""opsmind's own strategy (``opsmind``): pattern-aware, risk-targeted CPU, memory never below the peak.

CPU, for a workload with a daily (or weekly) pattern, is a *schedule*: one request per hour of the day (or of
the week) chosen to reserve as little unused CPU as possible while the share of history samples above the
request stays under ``risk_target``:

1. the samples are grouped by phase (hour of day, or hour of week when 14+ days show a weekly pattern);
2. each phase's candidate requests are its usage quantiles (P50 ... P100) times ``1 + day_headroom``
   (room for a day that runs hotter than the ones seen);
3. a Lagrange multiplier ``lambda`` prices one sample above request in cores; each phase takes the candidate
   minimising ``unused CPU + lambda * samples above``, and ``lambda`` is found by bisection as the smallest
   price that keeps the share above request within ``risk_target``. Quiet hours, where a higher quantile costs
   little CPU, take less risk than busy ones: the risk budget goes where it buys the most.

The static request (the only one for a workload without a pattern, and the one to use where schedules cannot
be applied) is the ``static_percentile`` of the usage. With 14+ days of history a significant upward trend
(Theil-Sen slope of the daily P95, 95 % interval above zero) scales everything by (the trend's level at the end
of ``horizon``) / (the median daily P95 of the history): the history's quantiles sit at its median level. Shorter
histories are not extrapolated (a weekly cycle in 8 days looks like a trend).

Memory is never below the observed peak: request = limit = peak * (1 + headroom), the headroom from the
workload class (10 %, 20 % for databases and caches); after an OOM kill at least
``max(used * 1.2, used + 100 MiB)`` with ``used`` the limit it was killed at (or its memory then).

Undefined (with the reason): history shorter than ``min_history``; a crash-looping container (more than
``max_restarts_per_day`` restarts a day that OOM kills do not explain), whose usage does not show what it needs.
A container throttled in more than ``throttled_share_max`` of its CFS periods gets a request of at least its
current CPU limit and no schedule: its usage is capped, so the demand is at least what it was allowed.
``confidence`` = min(1, days of history / 14) times the share of expected samples present.
"""

from __future__ import annotations

import math
from typing import Annotated, ClassVar

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, BeforeValidator, Field
from scipy import stats

from opsmind.core import FloatArray
from opsmind.rightsize.base import (
    DAY_S,
    MIB,
    MONDAY_S,
    RECOMMENDERS,
    WEEK_S,
    Evidence,
    Recommendation,
    Recommender,
    Schedule,
    Undefined,
    WorkloadUsage,
    fmt_cpu,
)
from opsmind.rightsize.classify import profile
from opsmind.sources.timeparse import parse_duration

__all__ = ["ForecastAware", "ForecastAwareSettings", "growth_factor", "risk_schedule"]

DurationS = Annotated[float, BeforeValidator(parse_duration)]
QUANTILES = np.array([0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.925, 0.95, 0.97, 0.98, 0.99, 0.995, 1.0])


class ForecastAwareSettings(BaseModel):
    """Settings of opsmind's strategy (see the module docstring)."""

    risk_target: float = Field(0.01, gt=0, lt=1, description="Share of history samples allowed above the CPU "
                               "request schedule; the schedule minimises unused CPU under it.")
    day_headroom: float = Field(0.10, ge=0, description="Headroom on each scheduled request for a hotter day.")
    static_percentile: float = Field(98.0, gt=0, le=100, description="Usage percentile for the static CPU request.")
    schedule: bool = Field(True, description="Recommend a time-of-day CPU schedule for workloads with a pattern.")
    seasonality_threshold: float = Field(0.3, gt=0, lt=1, description="Autocorrelation at 1 day / 1 week that "
                                         "counts as a daily / weekly pattern.")
    block: DurationS = Field(3600.0, gt=0, description="Length of one schedule block (e.g. 1h, 30m).")
    min_history: DurationS = Field(DAY_S, ge=0, description="Shorter histories give no recommendation.")
    history_length: DurationS = Field(28 * DAY_S, gt=0, description="History used (the most recent part).")
    trend_min_history: DurationS = Field(14 * DAY_S, gt=0, description="History needed before a trend is "
                                         "extrapolated.")
    horizon: DurationS = Field(7 * DAY_S, gt=0, description="How far ahead a trend is extrapolated.")
    memory_headroom: float | None = Field(None, ge=0, description="Memory over the peak (default: from the "
                                          "workload class, 10 % or 20 %).")
    min_cpu: float = Field(0.01, ge=0, description="Smallest CPU request (cores).")
    min_memory: float = Field(100 * MIB, ge=0, description="Smallest memory request (bytes).")
    max_restarts_per_day: float = Field(3.0, ge=0, description="Restarts a day (not OOM kills) above which the "
                                        "container is crash-looping and not sized.")
    throttled_share_max: float = Field(0.05, ge=0, le=1, description="CFS throttled share above which usage is "
                                       "treated as capped by the CPU limit.")
    oom_bump_up_ratio: float = Field(1.2, ge=1, description="Memory after an OOM kill: at least used times this.")
    oom_min_bump_up: float = Field(100 * MIB, ge=0, description="...and at least used plus this (bytes).")


def risk_schedule(
    t: FloatArray,
    v: FloatArray,
    *,
    period_s: float,
    block_s: float,
    risk: float,
    headroom: float,
) -> tuple[FloatArray, float]:
    """Per-block CPU requests minimising unused CPU with at most ``risk`` of the samples above them.

    Returns the requests (one per block of the period; phase 0 is 00:00 UTC, or Monday 00:00 UTC for a week)
    and the in-sample share of samples above them.

    Examples
    --------
    >>> t = np.arange(0, 4 * 86400, 600.0)
    >>> v = np.where((t % 86400) < 43200, 1.0, 3.0)
    >>> r, share = risk_schedule(t, v, period_s=86400.0, block_s=43200.0, risk=0.01, headroom=0.1)
    >>> r.round(2).tolist(), share
    ([1.1, 3.3], 0.0)
    """
    origin = MONDAY_S if period_s >= WEEK_S else 0.0
    nb = round(period_s / block_s)
    phase = np.floor(np.mod(t - origin, period_s) / block_s).astype(np.int64)
    cand = np.full((nb, QUANTILES.size), np.nan)
    slack = np.zeros((nb, QUANTILES.size))
    above = np.zeros((nb, QUANTILES.size))
    order = np.argsort(phase, kind="stable")
    bounds = np.searchsorted(phase[order], np.arange(nb + 1))
    for k in range(nb):
        x = v[order[bounds[k]:bounds[k + 1]]]
        if x.size == 0:
            continue
        c = np.quantile(x, QUANTILES) * (1.0 + headroom)
        cand[k] = c
        slack[k] = np.maximum(c[:, None] - x[None, :], 0.0).sum(axis=1)
        above[k] = (x[None, :] > c[:, None]).sum(axis=1)
    have = np.isfinite(cand[:, 0])
    n = float(v.size)
    scale = max(float(np.mean(v)), 1e-12)

    def pick(lam: float) -> tuple[npt.NDArray[np.intp], float]:
        idx = np.argmin(slack + lam * above, axis=1)
        return idx, float(above[np.arange(nb), idx][have].sum() / n)

    lo, hi = 1e-9 * scale, 1e9 * scale
    idx, share = pick(hi)
    for _ in range(80):
        mid = math.sqrt(lo * hi)
        i_mid, s_mid = pick(mid)
        if s_mid > risk:
            lo = mid
        else:
            hi, idx, share = mid, i_mid, s_mid
    values = cand[np.arange(nb), idx]
    if not have.all():
        values[~have] = np.nanmax(values)
    return values, share


def growth_factor(t: FloatArray, v: FloatArray, horizon_s: float) -> tuple[float, float]:
    """``(factor >= 1, slope per day)`` from a Theil-Sen fit of the daily P95 (1.0 unless significantly rising).

    Examples
    --------
    >>> t = np.arange(0, 20 * 86400, 3600.0)
    >>> v = 1.0 + 0.1 * np.floor(t / 86400)
    >>> f, slope = growth_factor(t, v, 7 * 86400.0)
    >>> round(f, 3), round(slope, 3)
    (1.846, 0.1)
    """
    day = np.floor((t - t[0]) / DAY_S).astype(np.int64)
    counts = np.bincount(day)
    days = [d for d in range(counts.size) if counts[d] >= 0.75 * counts.max()]
    if len(days) < 4:
        return 1.0, 0.0
    y = np.array([np.percentile(v[day == d], 95) for d in days])
    x = np.array(days, dtype=np.float64)
    slope, intercept, low, _high = stats.theilslopes(y, x, 0.95)
    if not low > 0:
        return 1.0, float(slope)
    now = intercept + slope * x[-1]
    base = max(float(np.median(y)), 1e-12)
    return float(max(1.0, (now + slope * horizon_s / DAY_S) / base)), float(slope)


@RECOMMENDERS.register("opsmind")
class ForecastAware(Recommender):
    """opsmind's default strategy (see the module docstring)."""

    Settings: ClassVar[type[BaseModel]] = ForecastAwareSettings
    settings: ForecastAwareSettings

    def _recommend(self, data: WorkloadUsage) -> Recommendation | Undefined:
        s = self.settings
        t_all, _ = data.cpu_samples()
        data = data.window(float(t_all[-1]) - s.history_length + 1e-9, None)
        t, v = data.cpu_samples()
        span = float(t[-1] - t[0]) if t.size > 1 else 0.0
        if span < s.min_history:
            return Undefined(data.name, self.name, f"the history is {_dur(span)}, under the {_dur(s.min_history)} "
                             "minimum (not enough to see a daily cycle)", {"history_s": span})
        days = span / DAY_S
        crash_restarts = max(0.0, data.restarts - len(data.oom_kills))
        if crash_restarts / max(days, 1.0) > s.max_restarts_per_day:
            return Undefined(data.name, self.name, f"the container restarted {crash_restarts:g} times in "
                             f"{days:.1f} d without OOM kills (crash-looping): its usage does not show what it "
                             "needs", {"restarts": data.restarts})
        prof = profile(data, s.seasonality_threshold)
        notes: list[str] = []
        ev: Evidence = {k: (round(val, 4) if math.isfinite(val) else None) for k, val in prof.features.items()}

        growth, slope = (1.0, 0.0)
        if span >= s.trend_min_history:
            growth, slope = growth_factor(t, v, s.horizon)
            if growth > 1.0:
                notes.append(f"rising trend ({slope:+.3g} cores/day in daily P95): requests scaled by {growth:.2f} "
                             f"for the next {_dur(s.horizon)}")
        ev["growth_factor"] = round(growth, 4)

        static = max(float(np.percentile(v, s.static_percentile)) * growth, s.min_cpu)
        throttled = (data.throttled_share is not None and data.throttled_share > s.throttled_share_max
                     and data.current.cpu_limit is not None)
        if throttled:
            assert data.current.cpu_limit is not None and data.throttled_share is not None
            static = max(static, data.current.cpu_limit)
            notes.append(f"throttled in {data.throttled_share:.0%} of CFS periods: usage is capped at the "
                         f"{fmt_cpu(data.current.cpu_limit)} limit, so the request is at least that")
        schedule = None
        if s.schedule and prof.periodic and not throttled:
            period = WEEK_S if prof.pattern.startswith("weekly") else DAY_S
            if period % s.block == 0:
                values, share = risk_schedule(t, v, period_s=period, block_s=s.block, risk=s.risk_target,
                                              headroom=s.day_headroom)
                values = np.maximum(values * growth, s.min_cpu)
                schedule = Schedule(values, s.block, period)
                ev["schedule_share_above_in_history"] = round(share, 5)
                ev["schedule_mean_cores"] = round(schedule.mean, 6)
                ev["schedule_peak_cores"] = round(schedule.peak, 6)
            else:
                notes.append(f"no schedule: the {_dur(s.block)} block does not divide the period")

        mem_req, mem_notes = self._memory(data, prof.defaults.memory_headroom)
        notes += mem_notes
        expected = span / max(data.step_s(), 1e-9) + 1.0
        coverage = min(1.0, t.size / max(expected * max(data.mean_replicas(), 1.0), 1.0))
        confidence = min(1.0, days / 14.0) * coverage
        if confidence < 0.5:
            notes.append(f"low confidence ({confidence:.2f}): {days:.1f} d of history; rerun with more")
        reason = (f"{prof.pattern} {prof.workload_class}: "
                  + (f"hourly schedule ({fmt_cpu(schedule.mean)} mean, {fmt_cpu(schedule.peak)} peak) keeping "
                     f"<= {s.risk_target:.0%} of samples above request; static P{s.static_percentile:g}"
                     if schedule is not None else f"P{s.static_percentile:g} of usage"))
        return Recommendation(
            workload=data.name, strategy=self.name, cpu_request=static, cpu_limit=None,
            memory_request=mem_req, memory_limit=mem_req, cpu_schedule=schedule,
            workload_class=prof.workload_class, pattern=prof.pattern, confidence=confidence,
            reason=reason, evidence=ev, notes=tuple(notes),
        )

    def _memory(self, data: WorkloadUsage, class_headroom: float) -> tuple[float | None, list[str]]:
        s = self.settings
        tm, mv = data.memory_samples()
        if mv.size == 0:
            return None, ["memory: undefined, because there are no memory (working set) samples"]
        headroom = s.memory_headroom if s.memory_headroom is not None else class_headroom
        peak = float(mv.max())
        mem = max(peak * (1.0 + headroom), s.min_memory)
        notes = []
        for kill in data.oom_kills:
            near = mv[np.abs(tm - kill) <= 300.0]
            used = max(data.current.memory_limit or 0.0, float(near.max()) if near.size else 0.0) or peak
            mem = max(mem, used * s.oom_bump_up_ratio, used + s.oom_min_bump_up)
        if data.oom_kills:
            notes.append(f"{len(data.oom_kills)} OOM kill(s): memory at least max(used * {s.oom_bump_up_ratio:g}, "
                         f"used + {s.oom_min_bump_up / MIB:g} MiB)")
        return mem, notes


def _dur(seconds: float) -> str:
    for unit, size in (("d", DAY_S), ("h", 3600.0), ("min", 60.0)):
        if seconds >= size:
            val = seconds / size
            return f"{val:.0f} {unit}" if abs(val - round(val)) < 0.05 else f"{val:.1f} {unit}"
    return f"{seconds:.0f} s"
