"""opsmind's default forecaster: a backtest-weighted combination with conformal prediction intervals.

How it forecasts, all from the training window (nothing after the forecast origin is used):

1. Seasonality: :func:`~opsmind.forecast.seasonality.detect_periods` (daily, weekly) and gap filling along the
   seasonal profile.
2. Members (cheap, diverse): the median of the last hour (a level one spike does not move); seasonal naive
   (shortest period); the seasonal window average (mean of the last 3 cycles); a decomposition model (STL per
   period as in MSTL, non-seasonal AutoETS on the deseasonalised series, the seasons repeated); non-seasonal
   AutoETS on the raw series. Members that need a season are left out when there is none; ``naive`` (the last
   value) can be added with ``members=``.
3. Rolling-origin backtest inside the training window: from ``backtest_origins`` origins spread over the last
   ``backtest_span_s`` seconds (at most; every origin keeps two cycles of history before it), each member
   forecasts up to ``backtest_horizon_s`` ahead from the data before the origin. ETS parameters are estimated
   once on the whole window and its states filtered from the data before each origin; the STL decomposition
   and the seasonal profiles are recomputed at each origin.
4. Combination for a horizon of ``h`` steps: weights proportional to ``1 / MAE**2`` of each member over steps
   ``1 .. h`` of the backtest (inverse-error weighting, Bates & Granger 1969, on the absolute errors that MASE
   scores), keeping the members whose MAE is within ``keep_ratio`` times the best.
5. Intervals (split-conformal style): the combination's backtest errors per step ``k`` give a scale ``r_k``
   (a power law in ``k`` fitted to the per-step RMS); the errors divided by ``r_k`` are pooled, and their
   empirical quantiles (finite-sample conformal ranks) give the lower and upper bounds ``mean + q * r_k`` for
   each level. Beyond the backtest horizon the scale grows as ``sqrt(k)``.
6. A series that never goes below zero gets no negative forecast or bound.

Too little history for a backtest (fewer than ``min_backtest_errors`` errors): equal weights and intervals from
the in-sample one-step changes grown as ``sqrt(k)``, with a note saying so.
"""

from __future__ import annotations

import math
import warnings
from abc import ABC, abstractmethod
from typing import Any

import numpy as np

from opsmind.core import ConfigError, FloatArray
from opsmind.forecast._prepare import prepare
from opsmind.forecast.base import FORECASTERS, Forecaster, Intervals, fmt_duration

__all__ = ["DEFAULT_MEMBERS", "Ensemble"]

MEMBERS = ("naive", "median", "seasonal_naive", "seasonal_average", "decomposition", "ets")
#: The last value (``naive``) is left out by default: one spike at the origin becomes the whole forecast, and
#: ETS already follows a random walk when that is what the series is.
DEFAULT_MEMBERS = ("median", "seasonal_naive", "seasonal_average", "decomposition", "ets")


# -- members: fitted once on the whole window, then forecast causally from any prefix ------------------------


class _Member(ABC):
    name = ""

    def fit(self, y: FloatArray, periods: tuple[int, ...]) -> None:  # noqa: B027  (optional hook)
        """Estimate parameters on the whole training window."""

    @abstractmethod
    def forecast(self, y: FloatArray, start: int, h: int) -> FloatArray:
        """Forecast ``h`` steps after ``y`` (the first ``start`` values of the window) from ``y`` only."""


class _Naive(_Member):
    name = "naive"

    def forecast(self, y: FloatArray, start: int, h: int) -> FloatArray:
        return np.full(h, y[-1])


class _SeasonalNaive(_Member):
    name = "seasonal_naive"

    def __init__(self, period: int) -> None:
        self.period = period

    def forecast(self, y: FloatArray, start: int, h: int) -> FloatArray:
        m = self.period
        if y.size < m:
            return np.full(h, y[-1])
        return np.asarray(y[-m:][np.arange(h) % m], dtype=np.float64)


class _SeasonalAverage(_Member):
    """Mean over the last ``cycles`` cycles at each phase."""

    name = "seasonal_average"

    def __init__(self, period: int, cycles: int = 3) -> None:
        self.period, self.cycles = period, cycles

    def forecast(self, y: FloatArray, start: int, h: int) -> FloatArray:
        m = self.period
        k = min(self.cycles, y.size // m)
        if k < 1:
            return np.full(h, y[-1])
        prof = y[-k * m:].reshape(k, m).mean(axis=0)
        return np.asarray(prof[np.arange(h) % m], dtype=np.float64)


class _Decomposition(_Member):
    """MSTL-style: STL seasonal components removed, non-seasonal AutoETS on the rest, seasons repeated.

    The decomposition follows MSTL (Bandara, Hyndman & Bergmeir 2021, as in R's ``forecast::mstl`` and
    statsforecast): statsmodels STL per period, shortest first, seasonal windows 11, 15, ..., two passes when
    there are several periods. The loess smoothers are evaluated every ``ceil(window / 10)`` points and
    interpolated, R ``stl()``'s default jumps, which makes the decomposition cheap enough to recompute at
    every backtest origin.
    """

    name = "decomposition"

    def __init__(self, periods: tuple[int, ...]) -> None:
        self.periods = periods

    def _decompose(self, y: FloatArray) -> tuple[FloatArray, list[FloatArray]]:
        from statsmodels.tsa.seasonal import STL

        periods = sorted(p for p in self.periods if y.size >= 2 * p)
        if not periods:
            return y, []
        seasons = [np.zeros(y.size) for _ in periods]
        deseason = y.copy()
        for _ in range(2 if len(periods) > 1 else 1):
            for i, p in enumerate(periods):
                deseason = deseason + seasons[i]
                s_win = 7 + 4 * (i + 1)
                t_win = _odd(math.ceil(1.5 * p / (1 - 1.5 / s_win)))
                l_win = _odd(p + 1)
                fit = STL(deseason, period=p, seasonal=s_win, trend=t_win, low_pass=l_win, seasonal_deg=0,
                          seasonal_jump=math.ceil(s_win / 10), trend_jump=math.ceil(t_win / 10),
                          low_pass_jump=math.ceil(l_win / 10)).fit()
                seasons[i] = np.asarray(fit.seasonal, dtype=np.float64)
                deseason = deseason - seasons[i]
        # Each season continues as its last cycle.
        tails = [s[-p:] for s, p in zip(seasons, periods, strict=True)]
        return deseason, tails

    def fit(self, y: FloatArray, periods: tuple[int, ...]) -> None:
        from statsforecast.models import AutoETS

        d, _ = self._decompose(y)
        self.model = AutoETS(season_length=1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.model.fit(d)

    def forecast(self, y: FloatArray, start: int, h: int) -> FloatArray:
        d, tails = self._decompose(y)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            base = np.asarray(self.model.forward(y=d, h=h)["mean"], dtype=np.float64)
        for tail in tails:
            base = base + tail[np.arange(h) % tail.size]
        return base


def _odd(x: int) -> int:
    return x if x % 2 else x + 1


class _Median(_Member):
    """Median of the last hour (at least 3 steps): a level that one spike does not move."""

    name = "median"

    def __init__(self, window: int) -> None:
        self.window = max(3, window)

    def forecast(self, y: FloatArray, start: int, h: int) -> FloatArray:
        return np.full(h, float(np.median(y[-self.window:])))


class _ETS(_Member):
    name = "ets"

    def fit(self, y: FloatArray, periods: tuple[int, ...]) -> None:
        from statsforecast.models import AutoETS

        self.model = AutoETS(season_length=1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.model.fit(y)

    def forecast(self, y: FloatArray, start: int, h: int) -> FloatArray:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return np.asarray(self.model.forward(y=y, h=h)["mean"], dtype=np.float64)


def _make_members(names: tuple[str, ...], periods: tuple[int, ...], hour: int) -> list[_Member]:
    out: list[_Member] = []
    for name in names:
        if name == "naive":
            out.append(_Naive())
        elif name == "median":
            out.append(_Median(hour))
        elif name == "ets":
            out.append(_ETS())
        elif not periods:
            continue
        elif name == "seasonal_naive":
            out.append(_SeasonalNaive(periods[0]))
        elif name == "seasonal_average":
            out.append(_SeasonalAverage(periods[0]))
        elif name == "decomposition":
            out.append(_Decomposition(periods))
    return out


# -- the ensemble ---------------------------------------------------------------------------------------------


@FORECASTERS.register("opsmind")
class Ensemble(Forecaster):
    """opsmind's default forecaster (see the module docstring)."""

    def __init__(
        self,
        members: tuple[str, ...] | list[str] = DEFAULT_MEMBERS,
        backtest_origins: int = 36,
        backtest_span_s: float = 7 * 86400.0,
        backtest_horizon_s: float = 86400.0,
        keep_ratio: float = 2.0,
        weighting: str = "inverse_mae2",
        min_backtest_errors: int = 20,
        max_steps: int = 20000,
    ) -> None:
        unknown = [m for m in members if m not in MEMBERS]
        if unknown or not members:
            raise ConfigError(f"opsmind forecaster: unknown members {unknown}; known: {', '.join(MEMBERS)}")
        if backtest_origins < 1 or backtest_span_s <= 0 or backtest_horizon_s <= 0 or keep_ratio < 1:
            raise ConfigError("opsmind forecaster: backtest_origins >= 1, backtest spans > 0, keep_ratio >= 1")
        self.members = tuple(members)
        self.backtest_origins = backtest_origins
        self.backtest_span_s = backtest_span_s
        self.backtest_horizon_s = backtest_horizon_s
        self.keep_ratio = keep_ratio
        if weighting not in ("inverse_mse", "inverse_mae", "inverse_mae2", "best"):
            raise ConfigError(f"opsmind forecaster: weighting must be inverse_mse, inverse_mae, inverse_mae2 or best; "
                              f"got {weighting!r}")
        self.weighting = weighting
        self.min_backtest_errors = min_backtest_errors
        self.max_steps = max_steps

    # fit: members, backtest -------------------------------------------------------------------------------

    def _fit(self, y: FloatArray, step_s: float) -> None:
        prep = prepare(y, step_s, None, self.max_steps)
        notes = list(prep.notes)
        yf = prep.y
        n = yf.size
        self.y_ = yf
        self.nonnegative_ = prep.nonnegative
        self.periods_ = prep.periods
        members = _make_members(self.members, prep.periods, round(3600.0 / step_s))
        fitted: list[_Member] = []
        for m in members:
            try:
                m.fit(yf, prep.periods)
            except Exception as exc:  # statsforecast raises bare exceptions on tiny or degenerate input
                notes.append(f"member {m.name} left out: {str(exc).strip()[:80] or type(exc).__name__}")
                continue
            fitted.append(m)
        members = fitted
        if not members:
            notes.append("no member can forecast this series: using the last value")
            members = [_Naive()]
        self.members_ = members
        if not prep.periods:
            notes.append("no seasonality: level and trend models only")
        # Backtest origins: every origin leaves at least two cycles (or 10 steps) of history before it.
        hb = max(1, round(self.backtest_horizon_s / step_s))
        min_train = max(10, 2 * min(prep.periods, default=1))
        span = min(n - 1 - min_train, round(self.backtest_span_s / step_s) + hb)
        errors: FloatArray = np.full((len(members), 0, hb), np.nan)
        forecasts = errors.copy()
        actual: FloatArray = np.full((0, hb), np.nan)
        if span >= 0:
            k = min(self.backtest_origins, span + 1)
            origins = np.unique(np.round(np.linspace(n - 1, n - 1 - span, k)).astype(int))
            forecasts = np.full((len(members), origins.size, hb), np.nan)
            actual = np.full((origins.size, hb), np.nan)
            observed = np.isfinite(y[-n:]) if y.size >= n else np.isfinite(y)
            for j, o in enumerate(origins):
                h = min(hb, n - o)
                seg = yf[o:o + h].copy()
                seg[~observed[o:o + h]] = np.nan  # gaps filled for modelling are not scored
                actual[j, :h] = seg
                for i, m in enumerate(members):
                    forecasts[i, j, :h] = m.forecast(yf[:o], o, h)
            errors = forecasts - actual[None]
        self.backtest_forecasts_ = forecasts
        self.backtest_actual_ = actual
        self.backtest_errors_ = errors
        self.backtest_horizon_ = hb
        counted = int(np.isfinite(errors[0]).sum()) if len(members) else 0
        if counted < self.min_backtest_errors:
            notes.append(f"not enough history for a backtest ({fmt_duration(n * step_s)}): equal weights, "
                         "intervals from one-step errors")
        else:
            notes.append(f"weights and intervals from a backtest over the last "
                         f"{fmt_duration((span + 1) * step_s)} ({origins.size} origins)")
        self.insample_sigma_ = float(np.nanstd(np.diff(yf))) if n > 1 else 0.0
        self.backtest_ok_ = counted >= self.min_backtest_errors
        self.notes_ = notes

    # predict: weights, mean, intervals ------------------------------------------------------------------------

    def weights(self, horizon: int) -> dict[str, float]:
        """Member weights used for a forecast of ``horizon`` steps."""
        return dict(zip([m.name for m in self.members_], self._weights(horizon).tolist(), strict=True))

    def _weights(self, horizon: int) -> FloatArray:
        nm = len(self.members_)
        if not self.backtest_ok_:
            return np.full(nm, 1.0 / nm)
        h = min(horizon, self.backtest_horizon_)
        e = self.backtest_errors_[:, :, :h]
        power = 2.0 if self.weighting == "inverse_mse" else 1.0
        loss = np.array([np.nanmean(np.abs(e[i]) ** power) if np.isfinite(e[i]).any() else np.inf
                         for i in range(nm)])
        inv = 1.0 if self.weighting in ("inverse_mse", "inverse_mae") else 2.0
        best = float(np.min(loss))
        if not np.isfinite(best):
            return np.full(nm, 1.0 / nm)
        if best <= 0 or self.weighting == "best":
            w = (loss <= best).astype(float)
        else:
            ratio = self.keep_ratio if power == 1.0 else self.keep_ratio**2
            w = np.where(loss <= ratio * best, loss ** (-inv), 0.0)
        return np.asarray(w / w.sum(), dtype=np.float64)

    def _predict(self, horizon: int, levels: tuple[int, ...]) -> tuple[FloatArray, Intervals, list[str]]:
        w = self._weights(horizon)
        n = self.y_.size
        preds = np.stack([m.forecast(self.y_, n, horizon) for m in self.members_])
        mean = np.asarray(w @ preds, dtype=np.float64)
        scale, q = self._calibration(horizon, w, levels)
        intervals: Intervals = {}
        for lv in levels:
            lo, hi = q[lv]
            intervals[lv] = (mean + lo * scale, mean + hi * scale)
        notes = list(self.notes_)
        used = [f"{m.name} {wi:.2f}" for m, wi in zip(self.members_, w, strict=True) if wi > 0]
        notes.append("combination: " + ", ".join(used))
        if self.nonnegative_:
            mean = np.maximum(mean, 0.0)
            intervals = {lv: (np.maximum(lo, 0.0), np.maximum(hi, 0.0)) for lv, (lo, hi) in intervals.items()}
        return mean, intervals, notes

    def _calibration(self, horizon: int, w: FloatArray, levels: tuple[int, ...]
                     ) -> tuple[FloatArray, dict[int, tuple[float, float]]]:
        """Per-step scale ``r_k`` and, per level, the lower/upper quantiles of the normalised errors."""
        from scipy import stats

        k = np.arange(1, horizon + 1, dtype=np.float64)
        if not self.backtest_ok_:
            sigma = self.insample_sigma_
            z = {lv: float(stats.norm.ppf(0.5 + lv / 200.0)) for lv in levels}
            return sigma * np.sqrt(k), {lv: (-z[lv], z[lv]) for lv in levels}
        hb = self.backtest_horizon_
        ens = np.einsum("i,ijk->jk", w, self.backtest_forecasts_) - self.backtest_actual_
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # steps without any scored error give NaN
            rms = np.sqrt(np.nanmean(ens**2, axis=0)) if np.isfinite(ens).any() else np.zeros(hb)
        ks = np.arange(1, hb + 1, dtype=np.float64)
        ok = np.isfinite(rms) & (rms > 0)
        if ok.sum() >= 2:
            b, a = np.polyfit(np.log(ks[ok]), np.log(rms[ok]), 1, w=np.sqrt(np.isfinite(ens).sum(axis=0)[ok]))
            b = float(np.clip(b, 0.0, 1.0))
            r_fit = np.exp(a) * ks**b
        else:
            r0 = float(rms[ok][0]) if ok.any() else max(self.insample_sigma_, 1e-12)
            r_fit, b = np.full(hb, r0), 0.5
        r_fit = np.maximum(r_fit, 1e-12)
        scale = np.where(k <= hb, r_fit[np.minimum(k, hb).astype(int) - 1],
                         r_fit[-1] * np.sqrt(k / hb))
        hmax = min(horizon, hb)
        zs = (ens[:, :hmax] / r_fit[None, :hmax]).ravel()
        zs = zs[np.isfinite(zs)]
        q: dict[int, tuple[float, float]] = {}
        nz = zs.size
        for lv in levels:
            alpha = 1.0 - lv / 100.0
            # Finite-sample conformal levels: the ceil((n + 1)(1 - a/2))-th order statistic on each side.
            hi_rank = min(1.0, np.ceil((nz + 1) * (1 - alpha / 2)) / nz)
            lo_rank = max(0.0, 1.0 - hi_rank)
            # errors are forecast - actual, so the actual lies at mean - error.
            q[lv] = (float(-np.quantile(zs, hi_rank)), float(-np.quantile(zs, lo_rank)))
        return scale, q

    def describe(self) -> dict[str, Any]:
        """What the fitted forecaster chose: periods and member names."""
        return {"periods": list(self.periods_), "members": [m.name for m in self.members_]}
