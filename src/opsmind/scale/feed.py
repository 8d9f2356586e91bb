"""Short-horizon load forecasts for scaling, from a forecaster refitted on a schedule and updated every step.

Refitting a forecaster every control step (one minute) over weeks of history is far too slow, and the default
forecaster's intervals describe its own horizon (hours), not the next few minutes. :class:`RollingForecast`
therefore splits the work, using only data up to the current step:

* **Shape** - every ``refit_every_s`` the forecaster (default: opsmind's, ``"opsmind"``) is fitted on the trailing
  ``history_s`` of load, averaged into ``fit_step_s`` buckets, and predicts the mean path until the next refit
  (plus the longest horizon asked for); each control step takes the value of the bucket it falls in.
* **Level** - every step the path is scaled by the ratio of observed load to the path over the last
  ``level_window_s`` (only steps since the refit count; with fewer, the ratio shrinks towards 1).
* **Quantiles** - the upper bound of the ``level`` % interval at lead ``h`` is the level-corrected mean times
  the ``0.5 + level / 200`` quantile of the ratios actual / forecast at lead ``h`` over the last
  ``calibration_s`` (split-conformal on the rolling forecast's own errors, recomputed every ``calibrate_every_s``).
  Until there are ``min_calibration`` ratios, the forecaster's own interval at its first lead is used.

Forecasts depend only on the load history, so one instance may serve several policies replayed on the same trace:
results are cached per step (a history with a different start resets the cache).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from opsmind.core import ConfigError, FloatArray, Frame, OpsmindError
from opsmind.scale.base import LoadHistory

__all__ = ["RollingForecast", "ShortForecast"]


@dataclass(frozen=True)
class ShortForecast:
    """Mean and upper bound of the load (req/s) for leads ``1 .. len(mean)`` steps, and how they were made."""

    mean: FloatArray
    upper: FloatArray
    level: int
    method: str
    level_ratio: float
    calibrated: bool
    notes: tuple[str, ...] = ()
    residual: str = "ratio"
    samples: tuple[FloatArray, ...] = ()  # per lead: sorted recent errors (actual vs forecast), when calibrated

    def exceed_prob(self, rate: FloatArray) -> FloatArray:
        """``P(load at lead h > rate[j])`` for every lead (rows) and rate (columns), from the error samples."""
        rate = np.asarray(rate, dtype=np.float64)
        out = np.zeros((self.mean.shape[0], rate.shape[0]))
        for i, (m, e) in enumerate(zip(self.mean, self.samples, strict=False)):
            if e.size == 0:
                out[i] = (rate < self.upper[i]) * (1.0 - (0.5 + self.level / 200.0))
                continue
            if self.residual == "sqrt":
                thr = np.sqrt(np.maximum(rate, 0.0)) - math.sqrt(max(m, 0.0))
            else:
                thr = rate / m if m > 0 else np.full(rate.shape, np.inf)
            out[i] = 1.0 - np.searchsorted(e, thr, side="right") / e.size
        return out


@dataclass
class _Fit:
    k0: int  # index of the last step the fit saw
    path: FloatArray  # mean for steps k0 + 1, k0 + 2, ...
    rel_width: float  # the forecaster's own (upper - mean) / mean at its first lead (fallback quantile)
    method: str
    notes: tuple[str, ...]


class RollingForecast:
    """See the module docstring. ``forecaster`` is a registry name or ``{"type", "params"}`` spec."""

    def __init__(
        self,
        forecaster: str | Mapping[str, Any] = "opsmind",
        *,
        fit_step_s: float = 300.0,
        history_s: float = 7 * 86400.0,
        refit_every_s: float = 86400.0,
        min_history_s: float = 3600.0,
        level_window_s: float = 900.0,
        calibration_s: float = 86400.0,
        calibrate_every_s: float = 3600.0,
        min_calibration: int = 60,
        max_lead_steps: int = 60,
        quantile_leads: int = 10,
        level: int = 95,
        residual: str = "ratio",
    ) -> None:
        if not (fit_step_s > 0 and history_s > 0 and refit_every_s > 0 and level_window_s > 0 and calibration_s > 0):
            raise ConfigError("rolling forecast: every duration must be > 0")
        if not 0 < level < 100:
            raise ConfigError(f"rolling forecast: level is a percentage in (0, 100), got {level}")
        if max_lead_steps < 1 or quantile_leads < 1:
            raise ConfigError("rolling forecast: need max_lead_steps >= 1 and quantile_leads >= 1")
        self.forecaster = forecaster
        self.fit_step_s = fit_step_s
        self.history_s = history_s
        self.refit_every_s = refit_every_s
        self.min_history_s = min_history_s
        self.level_window_s = level_window_s
        self.calibration_s = calibration_s
        self.calibrate_every_s = calibrate_every_s
        self.min_calibration = min_calibration
        self.max_lead_steps = max_lead_steps
        self.quantile_leads = quantile_leads
        self.level = level
        if residual not in ("ratio", "sqrt"):
            raise ConfigError(f"rolling forecast: residual must be ratio or sqrt, got {residual!r}")
        self.residual = residual
        self.fit_seconds = 0.0
        self.n_fits = 0
        self._reset(math.nan, 0)

    def describe(self) -> str:
        name = self.forecaster if isinstance(self.forecaster, str) else self.forecaster.get("type", "?")
        return (f"forecaster {name!r} refitted every {self.refit_every_s / 3600:g} h on the last "
                f"{self.history_s / 86400:g} d in {self.fit_step_s / 60:g} min buckets; level from the last "
                f"{self.level_window_s / 60:g} min; upper {self.level} % bound calibrated on its own errors over "
                f"the last {self.calibration_s / 3600:g} h")

    def _reset(self, t0: float, capacity: int) -> None:
        self._t0 = t0
        self._n = 0  # steps processed
        self._fits: list[_Fit] = []
        cap = max(capacity, 16)
        self._fit_of = np.full(cap, -1, dtype=np.int64)
        self._ratio = np.full(cap, np.nan)
        self._resid = np.full((cap, self.quantile_leads), np.nan)
        self._q = np.full((cap, self.quantile_leads), np.nan)
        self._cal_of = np.full(cap, -1, dtype=np.int64)
        self._cal: list[tuple[FloatArray, ...]] = []
        self._last_fit_t = -math.inf
        self._last_cal_t = -math.inf
        self._q_now = np.full(self.quantile_leads, np.nan)
        self._fail_note = ""

    def _grow(self, n: int) -> None:
        if n <= self._fit_of.shape[0]:
            return
        cap = max(n, 2 * self._fit_of.shape[0])

        def grow(a: np.ndarray[Any, Any], fill: float) -> np.ndarray[Any, Any]:
            out = np.full((cap, *a.shape[1:]), fill, dtype=a.dtype)
            out[: a.shape[0]] = a
            return out

        self._fit_of = grow(self._fit_of, -1)
        self._ratio = grow(self._ratio, np.nan)
        self._resid = grow(self._resid, np.nan)
        self._q = grow(self._q, np.nan)
        self._cal_of = grow(self._cal_of, -1)

    # -- the per-step update ----------------------------------------------------------------------------------

    def at(self, history: LoadHistory, step_s: float, horizon: int) -> ShortForecast | None:
        """The forecast for the ``horizon`` steps after the last one of ``history`` (None before the first fit)."""
        n = len(history)
        if n == 0:
            return None
        if horizon < 1 or horizon > self.max_lead_steps:
            raise ConfigError(f"rolling forecast: horizon must be in 1..{self.max_lead_steps} steps, got {horizon}")
        if float(history.t[0]) != self._t0:  # another trace (a replay of the same one reuses the cache)
            self._reset(float(history.t[0]), n)
        if n > self._n:
            self._grow(n)
            for k in range(self._n, n):
                self._advance(history, k, step_s)
            self._n = n
        return self._forecast(n - 1, horizon)

    def _advance(self, h: LoadHistory, k: int, step_s: float) -> None:
        t, y = h.t, h.load
        tk = float(t[k])
        # 1. residuals of earlier forecasts that target step k
        n_leads = min(self.quantile_leads, k)
        if math.isfinite(y[k]) and n_leads > 0:
            origins = k - np.arange(1, n_leads + 1)
            fis = self._fit_of[origins]
            fi = int(fis[0])
            if fi >= 0 and bool(np.all(fis == fi)) and 0 <= k - self._fits[fi].k0 - 1 < self._fits[fi].path.shape[0]:
                preds = self._ratio[origins] * self._fits[fi].path[k - self._fits[fi].k0 - 1]
            else:
                preds = np.array([self._mean_at(int(o), k) for o in origins])
            with np.errstate(invalid="ignore", divide="ignore"):
                if self.residual == "sqrt":
                    self._resid[k, :n_leads] = np.where(preds >= 0, math.sqrt(y[k]) - np.sqrt(np.abs(preds)), np.nan)
                else:
                    self._resid[k, :n_leads] = np.where(preds > 0, y[k] / preds, np.nan)
        # 2. refit when due
        if tk - self._last_fit_t >= self.refit_every_s - 1e-9 and tk - float(t[0]) >= self.min_history_s - 1e-9:
            self._refit(h, k, step_s)
        self._fit_of[k] = len(self._fits) - 1
        # 3. calibration (quantile of the ratios per lead)
        if tk - self._last_cal_t >= self.calibrate_every_s - 1e-9:
            self._last_cal_t = tk
            w = max(1, round(self.calibration_s / step_s))
            block = self._resid[max(0, k - w + 1): k + 1]
            counts = np.isfinite(block).sum(axis=0)
            q = np.full(self.quantile_leads, np.nan)
            samples: list[FloatArray] = []
            for j in range(self.quantile_leads):
                e = block[:, j]
                e = np.sort(e[np.isfinite(e)]) if counts[j] >= self.min_calibration else np.empty(0)
                samples.append(e)
                if e.size:
                    q[j] = float(np.quantile(e, 0.5 + self.level / 200.0))
            self._cal.append(tuple(samples))
            self._q_now = q
        self._q[k] = self._q_now
        self._cal_of[k] = len(self._cal) - 1
        # 4. level ratio
        self._ratio[k] = self._level_ratio(h, k, step_s)

    def _refit(self, h: LoadHistory, k: int, step_s: float) -> None:
        import time

        from opsmind.forecast import FORECASTERS
        from opsmind.forecast.resample import regularise

        self._last_fit_t = float(h.t[k])
        w = max(2, round(self.history_s / step_s))
        lo = max(0, k + 1 - w)
        tt, yy = h.t[lo: k + 1], h.load[lo: k + 1]
        if np.isfinite(yy).sum() < 2:
            self._fail_note = "no observed load in the history window: the previous forecast is kept"
            return
        fit_step = max(self.fit_step_s, step_s)
        ts = (np.round(tt * 1e9)).astype(np.int64).astype("datetime64[ns]")
        # Drop the first, partial bucket; the last bucket may be partial (it holds the latest data).
        try:
            frame = Frame(ts, yy.reshape(-1, 1).astype(np.float64), ("load",), "load")
            frame = regularise(frame, fit_step, "mean", origin="epoch")
            steps_ahead = math.ceil((self.refit_every_s + (self.max_lead_steps + 1) * step_s) / fit_step) + 1
            start = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                model = FORECASTERS.build(self.forecaster).fit(frame)
                fc = model.predict(steps_ahead, levels=(self.level,))
            self.fit_seconds += time.perf_counter() - start
            self.n_fits += 1
        except (OpsmindError, ValueError, FloatingPointError) as exc:  # keep the previous fit, say why
            self._fail_note = f"the forecaster failed at a refit ({exc}); the previous forecast is kept"
            return
        starts = np.concatenate([frame.seconds(), frame.seconds()[-1] + fit_step * np.arange(1, steps_ahead + 1)])
        values = np.concatenate([frame.values[:, 0], fc.mean])
        ok = np.isfinite(values)
        n_path = math.ceil(self.refit_every_s / step_s) + self.max_lead_steps + 2
        targets = float(h.t[k]) + step_s * np.arange(1, n_path + 1)
        if ok.any():  # each step takes the value of the bucket it falls in (steps stay steps)
            filled = np.interp(np.arange(values.size), np.flatnonzero(ok), values[ok])
            idx = np.clip(np.searchsorted(starts, targets, side="right") - 1, 0, values.size - 1)
            path = filled[idx]
        else:
            path = np.full(n_path, np.nan)
        path = np.maximum(path, 0.0)
        m0, u0 = float(fc.mean[0]), float(fc.upper(self.level)[0])
        rel = (u0 - m0) / m0 if m0 > 0 and math.isfinite(u0) else 0.0
        self._fits.append(_Fit(k, path, max(rel, 0.0), fc.method, fc.notes))
        self._fail_note = ""

    def _mean_at(self, origin: int, target: int) -> float:
        """The level-corrected mean that the forecast made at step ``origin`` gave for step ``target``."""
        fi = int(self._fit_of[origin])
        if fi < 0:
            return math.nan
        fit = self._fits[fi]
        j = target - fit.k0 - 1
        if j < 0 or j >= fit.path.shape[0]:
            return math.nan
        return float(self._ratio[origin] * fit.path[j])

    def _level_ratio(self, h: LoadHistory, k: int, step_s: float) -> float:
        fi = int(self._fit_of[k])
        if fi < 0:
            return math.nan
        fit = self._fits[fi]
        window = max(1, round(self.level_window_s / step_s))
        lo = max(fit.k0 + 1, k - window + 1)
        if lo > k:
            return 1.0
        y = h.load[lo: k + 1]
        s = fit.path[lo - fit.k0 - 1: k - fit.k0]
        ok = np.isfinite(y) & np.isfinite(s)
        m = int(ok.sum())
        if m == 0 or not float(s[ok].sum()) > 0:
            return 1.0
        r = float(y[ok].sum() / s[ok].sum())
        return (m * r + (window - m) * 1.0) / window

    def _forecast(self, k: int, horizon: int) -> ShortForecast | None:
        fi = int(self._fit_of[k])
        if fi < 0:
            return None
        fit = self._fits[fi]
        j0 = k - fit.k0
        path = fit.path[j0: j0 + horizon]
        if path.shape[0] < horizon or not np.isfinite(path).all():
            return None
        r = float(self._ratio[k])
        mean = r * path
        q = self._q[k, : min(horizon, self.quantile_leads)]
        calibrated = bool(np.isfinite(q).all())
        if calibrated:
            q_full = np.concatenate([q, np.full(max(0, horizon - q.shape[0]), q[-1])])
            if self.residual == "sqrt":
                upper = (np.sqrt(mean) + np.maximum(q_full, 0.0)) ** 2
            else:
                upper = mean * np.maximum(q_full, 1.0)
        else:
            upper = mean * (1.0 + fit.rel_width)
        notes = fit.notes + ((self._fail_note,) if self._fail_note else ())
        ci = int(self._cal_of[k])
        samples: tuple[FloatArray, ...] = ()
        if calibrated and ci >= 0:
            cal = self._cal[ci]
            samples = cal[:horizon]  # leads beyond the calibrated ones have no samples
        return ShortForecast(mean, upper, self.level, fit.method, r, calibrated, notes, self.residual, samples)

