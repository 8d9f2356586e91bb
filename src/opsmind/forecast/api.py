"""One call from a frame to a forecast: pick the column, put it on a grid, fit, predict (used by the CLI)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from opsmind.core import ConfigError, DataError, Frame
from opsmind.forecast.base import FORECASTERS, Forecast, fmt_duration, infer_step
from opsmind.forecast.resample import regularise

__all__ = ["forecast_frame"]


def forecast_frame(
    frame: Frame,
    horizon_s: float,
    *,
    column: str | None = None,
    step_s: float | None = None,
    method: str | Mapping[str, Any] = "opsmind",
    levels: Sequence[int] = (80, 95),
) -> tuple[Forecast, Frame]:
    """Forecast ``horizon_s`` seconds of one column of ``frame``; returns the forecast and the history used.

    ``step_s`` resamples the history to that step first (mean per bucket); by default the step is the data's.
    The horizon is rounded up to whole steps (a note says so when it is shorter than one step).
    """
    import opsmind.forecast  # noqa: F401  (registers every forecaster)

    if not horizon_s > 0:
        raise ConfigError(f"horizon must be positive, got {horizon_s} s")
    if frame.ndim == 0:
        raise DataError("no series: the file or query returned no value column", where=frame.name or None)
    if column is not None:
        frame = frame.select([column]) if column in frame.columns else _no_column(frame, column)
    elif frame.ndim > 1:
        raise DataError(f"{frame.ndim} value columns ({', '.join(frame.columns)}): choose one with --column",
                        where=frame.name or None)
    if len(frame) < 2:
        raise DataError(f"need at least 2 observations to forecast, got {len(frame)}", where=frame.name or None)
    notes: list[str] = []
    if step_s is not None:
        frame = regularise(frame, step_s, "mean")
    step = infer_step(frame.timestamps)
    steps = max(1, math.ceil(horizon_s / step - 1e-9))
    if horizon_s < step:
        notes.append(f"horizon {fmt_duration(horizon_s)} is shorter than the step {fmt_duration(step)}: "
                     "forecasting one step")
    model = FORECASTERS.build(method)
    fc = model.fit(frame).predict(steps, levels)
    return replace(fc, notes=(*fc.notes, *notes)), frame


def _no_column(frame: Frame, column: str) -> Frame:
    raise DataError(f"no column {column!r}; columns: {', '.join(frame.columns)}", where=frame.name or None)
