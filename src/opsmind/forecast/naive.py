"""Seasonal naive: each future value repeats the value one season earlier (naive: the last value)."""

from __future__ import annotations

import numpy as np
from scipy import stats

from opsmind.core import ConfigError, DataError, FloatArray
from opsmind.forecast.base import FORECASTERS, Forecaster, Intervals
from opsmind.forecast.seasonality import detect_periods, fill_gaps

__all__ = ["SeasonalNaive"]


@FORECASTERS.register("seasonal_naive")
class SeasonalNaive(Forecaster):
    """``y[T + h] = y[T + h - m * ceil(h / m)]`` with ``m`` the season in steps.

    ``period=None`` detects it (the shortest detected of daily/weekly); with no seasonality, or ``period=1``,
    this is the naive forecast (last value). Gaps are filled by linear interpolation first. Intervals are
    normal with the standard deviation of the in-sample seasonal differences, widened by ``sqrt(k + 1)`` for
    the ``k``-th repeated season (Hyndman & Athanasopoulos, FPP3 §5.5).
    """

    def __init__(self, period: int | None = None) -> None:
        if period is not None and int(period) < 1:
            raise ConfigError(f"seasonal_naive: period must be >= 1 step, got {period}")
        self.period = period

    def _fit(self, y: FloatArray, step_s: float) -> None:
        notes: list[str] = []
        if self.period is None:
            periods, notes = detect_periods(y, step_s)
            m = periods[0] if periods else 1
        else:
            m = int(self.period)
        if m > 1 and y.size < m + 1:
            notes.append(f"only {y.size} steps for a season of {m}: using the last value instead")
            m = 1
        filled = fill_gaps(y)
        if np.isnan(filled).any():
            raise DataError("the series has no finite values")
        if np.isnan(y).any():
            notes.append(f"{int(np.isnan(y).sum())} missing steps filled by linear interpolation")
        self.season_ = m
        self.y_ = filled
        diffs = filled[m:] - filled[:-m] if filled.size > m else np.zeros(1)
        self.sigma_ = float(np.sqrt(np.mean(diffs**2))) if diffs.size else 0.0
        self.notes_ = notes + ([f"seasonal naive with a season of {m} steps"] if m > 1 else
                               ["naive forecast (last value): no seasonal period"])

    def _predict(self, horizon: int, levels: tuple[int, ...]) -> tuple[FloatArray, Intervals, list[str]]:
        m = self.season_
        last = self.y_[-m:]
        h = np.arange(horizon)
        mean = last[h % m].astype(np.float64)
        k = h // m
        scale = self.sigma_ * np.sqrt(k + 1.0) if m > 1 else self.sigma_ * np.sqrt(h + 1.0)
        intervals: Intervals = {}
        for lv in levels:
            z = float(stats.norm.ppf(0.5 + lv / 200.0))
            intervals[lv] = (mean - z * scale, mean + z * scale)
        return mean, intervals, list(self.notes_)
