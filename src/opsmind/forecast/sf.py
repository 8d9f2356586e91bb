"""statsforecast models behind the forecaster interface: AutoETS, MSTL and AutoTheta.

Each wrapper detects the seasonal periods (unless given), fills gaps (statsforecast does not accept missing
values), and falls back to a simpler model with a note when the history is too short for the requested one.
The prediction intervals are statsforecast's own.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from opsmind.core import ConfigError, FloatArray
from opsmind.forecast._prepare import Prepared, prepare
from opsmind.forecast.base import FORECASTERS, Forecaster, Intervals

__all__ = ["ETS", "MSTL", "Theta"]

#: statsforecast's ETS fits seasonal models only for seasons of at most 24 steps.
ETS_MAX_SEASON = 24


def _check_periods(periods: list[int] | None, who: str) -> None:
    if periods is not None and any(int(p) < 1 for p in periods):
        raise ConfigError(f"{who}: periods must be >= 1 step, got {periods}")


class _StatsForecastModel(Forecaster):
    def __init__(self, periods: list[int] | None = None, max_steps: int = 20000) -> None:
        _check_periods(periods, type(self).__name__)
        self.periods = periods
        self.max_steps = max_steps

    def _build(self, prep: Prepared) -> tuple[Any, list[str]]:
        raise NotImplementedError

    def _fit(self, y: FloatArray, step_s: float) -> None:
        prep = prepare(y, step_s, self.periods, self.max_steps)
        model, notes = self._build(prep)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                model.fit(prep.y)
            except Exception as exc:  # statsforecast raises bare exceptions on degenerate input
                from statsforecast.models import Naive

                notes.append(f"{type(model).__name__} failed ({str(exc).strip()[:80]}): using the last value")
                model = Naive()
                model.fit(prep.y)
        self.model_ = model
        self.notes_ = [*prep.notes, *notes]

    def _predict(self, horizon: int, levels: tuple[int, ...]) -> tuple[FloatArray, Intervals, list[str]]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = self.model_.predict(h=horizon, level=list(levels)) if levels else self.model_.predict(h=horizon)
        mean = np.asarray(out["mean"], dtype=np.float64)
        intervals: Intervals = {
            lv: (np.asarray(out[f"lo-{lv}"], dtype=np.float64), np.asarray(out[f"hi-{lv}"], dtype=np.float64))
            for lv in levels
        }
        return mean, intervals, list(self.notes_)


@FORECASTERS.register("ets")
class ETS(_StatsForecastModel):
    """statsforecast ``AutoETS`` (model chosen by AICc) with the shortest detected period as its season.

    statsforecast fits seasonal ETS models only for seasons of at most 24 steps; with a longer season (a day
    of 5-minute steps) it chooses among non-seasonal models, so it is given season 1 (same models, much faster).
    """

    def _build(self, prep: Prepared) -> tuple[Any, list[str]]:
        from statsforecast.models import AutoETS

        m = prep.periods[0] if prep.periods else 1
        notes = []
        if m > ETS_MAX_SEASON:
            notes.append(f"ETS: season of {m} steps is longer than {ETS_MAX_SEASON}: non-seasonal ETS")
            m = 1
        return AutoETS(season_length=m), notes


@FORECASTERS.register("mstl")
class MSTL(_StatsForecastModel):
    """statsforecast ``MSTL``: STL with every detected period, AutoETS (no season) on the trend.

    With no seasonal period it is non-seasonal AutoETS (said in the notes).
    """

    def _build(self, prep: Prepared) -> tuple[Any, list[str]]:
        from statsforecast.models import MSTL as SFMSTL
        from statsforecast.models import AutoETS

        if not prep.periods:
            return AutoETS(season_length=1), ["MSTL needs a seasonal period: using non-seasonal ETS"]
        return SFMSTL(season_length=list(prep.periods)), []


@FORECASTERS.register("theta")
class Theta(_StatsForecastModel):
    """statsforecast ``AutoTheta`` with the shortest detected period (season 1 without one)."""

    def _build(self, prep: Prepared) -> tuple[Any, list[str]]:
        from statsforecast.models import AutoTheta

        m = prep.periods[0] if prep.periods else 1
        return AutoTheta(season_length=m), []
