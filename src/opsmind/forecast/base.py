"""The forecaster interface: fit on one regular series, predict a mean and prediction intervals.

A :class:`Forecaster` is fitted on a one-column :class:`~opsmind.core.Frame`. The step is inferred from the
timestamps (the median spacing); a series that is not on a regular grid is put on one by
:func:`opsmind.forecast.resample.regularise` (mean per bucket, NaN for empty buckets). Missing values (NaN) are
allowed: each forecaster fills or skips them and says so in :attr:`Forecast.notes`.

``predict(horizon)`` takes the horizon in steps and returns a :class:`Forecast` on the future grid
``last timestamp + step * (1 .. horizon)``, with one ``(lower, upper)`` pair per requested level (percent).

Subclasses implement ``_fit(y, step_s)`` and ``_predict(horizon, levels)`` on plain float arrays; the base class
does the validation, the grid and the bookkeeping. Constructor arguments are stored unchanged (so the
:data:`FORECASTERS` registry can dump and rebuild them); learned state lives in attributes ending in ``_``.
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Self

import numpy as np
import numpy.typing as npt
import pandas as pd

from opsmind.core import ConfigError, DataError, FloatArray, Frame, NotFittedError, Registry

__all__ = ["FORECASTERS", "Forecast", "Forecaster", "default_forecaster", "fmt_duration", "future_grid", "infer_step"]

Intervals = dict[int, tuple[FloatArray, FloatArray]]


@dataclass(frozen=True, eq=False)
class Forecast:
    """A point forecast with prediction intervals on a future time grid.

    ``intervals`` maps a level in percent (80, 95) to ``(lower, upper)``; ``notes`` are human explanations of
    what the forecaster did (chosen seasonality, fallbacks, gaps filled).
    """

    timestamps: npt.NDArray[np.datetime64]
    mean: FloatArray
    intervals: Intervals
    method: str
    notes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        h = self.timestamps.shape[0]
        if self.mean.shape != (h,):
            raise DataError(f"forecast mean has shape {self.mean.shape}, expected ({h},)")
        for level, (lo, hi) in self.intervals.items():
            if lo.shape != (h,) or hi.shape != (h,):
                raise DataError(f"{level} % interval has shapes {lo.shape}/{hi.shape}, expected ({h},)")

    def __len__(self) -> int:
        return int(self.mean.shape[0])

    @property
    def levels(self) -> tuple[int, ...]:
        return tuple(sorted(self.intervals))

    def lower(self, level: int) -> FloatArray:
        return self._interval(level)[0]

    def upper(self, level: int) -> FloatArray:
        return self._interval(level)[1]

    def _interval(self, level: int) -> tuple[FloatArray, FloatArray]:
        try:
            return self.intervals[level]
        except KeyError:
            have = ", ".join(str(x) for x in self.levels) or "none"
            raise ConfigError(f"no {level} % interval in this forecast; levels: {have}") from None

    def to_pandas(self) -> pd.DataFrame:
        """Columns ``timestamp, mean, lower_80, upper_80, lower_95, upper_95`` (one pair per level)."""
        df = pd.DataFrame({"timestamp": pd.to_datetime(self.timestamps), "mean": self.mean})
        for level in self.levels:
            df[f"lower_{level}"] = self.lower(level)
            df[f"upper_{level}"] = self.upper(level)
        return df


def infer_step(timestamps: npt.NDArray[np.datetime64]) -> float:
    """The series step in seconds: the median spacing of the timestamps (``DataError`` with fewer than 2)."""
    if timestamps.shape[0] < 2:
        raise DataError("need at least 2 timestamps to infer the step")
    diffs = np.diff(timestamps.astype("datetime64[ns]").astype(np.int64)) / 1e9
    step = float(np.median(diffs))
    if not step > 0:
        raise DataError("cannot infer a positive step from the timestamps")
    return step


def future_grid(last: np.datetime64, step_s: float, horizon: int) -> npt.NDArray[np.datetime64]:
    """``last + step * (1 .. horizon)`` as datetime64[ns]."""
    step_ns = np.int64(round(step_s * 1e9))
    base = np.asarray([last]).astype("datetime64[ns]").astype(np.int64)[0]
    out: npt.NDArray[np.datetime64] = (base + step_ns * np.arange(1, horizon + 1, dtype=np.int64)).astype(
        "datetime64[ns]"
    )
    return out


def check_levels(levels: Sequence[int]) -> tuple[int, ...]:
    out = tuple(int(x) for x in levels)
    for lv in out:
        if not 0 < lv < 100:
            raise ConfigError(f"interval level must be between 0 and 100 (percent), got {lv}")
    return out


class Forecaster(ABC):
    """Base class of every forecaster (see the module docstring for the contract)."""

    def fit(self, frame: Frame) -> Self:
        """Learn from a one-column frame; the step is inferred (NaN gaps allowed)."""
        from opsmind.forecast.resample import regularise

        if frame.ndim != 1:
            raise DataError(f"a forecaster takes one column, got {frame.ndim} ({', '.join(frame.columns)}); "
                            "select one", where=frame.name or None)
        if len(frame) < 2:
            raise DataError(f"need at least 2 observations to forecast, got {len(frame)}", where=frame.name or None)
        step = infer_step(frame.timestamps)
        ns = frame.timestamps.astype("datetime64[ns]").astype(np.int64)
        if np.any(np.diff(ns) != np.int64(round(step * 1e9))):
            before = len(frame)
            frame = regularise(frame, step, origin="start")
            frame = Frame(frame.timestamps, frame.values, frame.columns, frame.name, (
                *frame.notes, f"irregular timestamps: put on a regular {fmt_duration(step)} grid "
                f"({before} observations -> {len(frame)} steps)"))
        y = np.asarray(frame.values[:, 0], dtype=np.float64).copy()
        y[~np.isfinite(y)] = np.nan
        if not np.isfinite(y).any():
            raise DataError("the series has no finite values", where=frame.name or None)
        self.step_s_ = step
        self.last_timestamp_ = frame.timestamps[-1]
        self.history_ = y
        self.history_timestamps_ = frame.timestamps
        self.name_ = frame.name
        self.fit_notes_: tuple[str, ...] = tuple(dict.fromkeys(frame.notes))
        self._fit(y, step)
        return self

    def predict(self, horizon: int, levels: Sequence[int] = (80, 95)) -> Forecast:
        """Forecast ``horizon`` steps ahead with the given interval levels (percent)."""
        if not hasattr(self, "history_"):
            raise NotFittedError(f"{type(self).__name__}: call fit() before predict()")
        if int(horizon) < 1:
            raise ConfigError(f"horizon must be at least 1 step, got {horizon}")
        lv = check_levels(levels)
        mean, intervals, notes = self._predict(int(horizon), lv)
        ts = future_grid(self.last_timestamp_, self.step_s_, int(horizon))
        all_notes = tuple(dict.fromkeys((*self.fit_notes_, *notes)))
        return Forecast(ts, np.asarray(mean, dtype=np.float64), intervals, self.method_name(), all_notes)

    def method_name(self) -> str:
        return str(getattr(type(self), "_registry_name", type(self).__name__))

    def clone(self) -> Self:
        """An unfitted copy with the same parameters."""
        new = copy.copy(self)
        for k in [k for k in vars(new) if k.endswith("_")]:
            delattr(new, k)
        return new

    def get_params(self) -> dict[str, Any]:
        params: dict[str, Any] = FORECASTERS.spec(self)["params"]
        return params

    @abstractmethod
    def _fit(self, y: FloatArray, step_s: float) -> None:
        """Learn from the regular series ``y`` (NaN = missing) with step ``step_s`` seconds."""

    @abstractmethod
    def _predict(self, horizon: int, levels: tuple[int, ...]) -> tuple[FloatArray, Intervals, list[str]]:
        """Mean, intervals per level and notes for ``horizon`` steps."""


def fmt_duration(seconds: float) -> str:
    """A duration for humans: ``5 min``, ``2 h``, ``1.5 d``, ``30 s``."""
    for unit, s in (("d", 86400.0), ("h", 3600.0), ("min", 60.0)):
        if seconds >= s:
            v = seconds / s
            return f"{v:.0f} {unit}" if abs(v - round(v)) < 1e-9 else f"{v:.1f} {unit}"
    return f"{seconds:g} s"


FORECASTERS: Registry[Forecaster] = Registry("forecaster")


def default_forecaster() -> Forecaster:
    """opsmind's default forecaster (registered as ``"opsmind"``)."""
    import opsmind.forecast  # noqa: F401  (registers every forecaster)

    return FORECASTERS.build("opsmind")
