"""A picture of a forecast: the recent history, the mean and the prediction bands (matplotlib, Agg)."""

from __future__ import annotations

from typing import Any

import numpy as np

from opsmind.core import Frame
from opsmind.forecast.base import Forecast

__all__ = ["forecast_figure"]


def forecast_figure(history: Frame, forecast: Forecast, *, title: str = "", max_history: int | None = None) -> Any:
    """A matplotlib ``Figure``: history (the last ``max_history`` points, default 4 horizons), mean, bands."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    keep = max_history if max_history is not None else max(4 * len(forecast), 200)
    ts = history.timestamps[-keep:]
    ys = history.values[-keep:, 0]
    fig = Figure(figsize=(10, 4), dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    ax.plot(ts, ys, color="#333333", linewidth=1.0, label="history")
    shades = {80: 0.35, 95: 0.18}
    for level in sorted(forecast.levels, reverse=True):
        ax.fill_between(forecast.timestamps, forecast.lower(level), forecast.upper(level), color="#1f77b4",
                        alpha=shades.get(level, 0.25), linewidth=0, label=f"{level} % interval")
    ax.plot(forecast.timestamps, forecast.mean, color="#1f77b4", linewidth=1.5, label=f"forecast ({forecast.method})")
    if np.isfinite(ys).any():
        ax.axvline(ts[-1], color="#999999", linewidth=0.8, linestyle=":")
    ax.set_title(title or f"{history.columns[0]}: {len(forecast)}-step forecast")
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(alpha=0.3)
    fig.autofmt_xdate()
    fig.tight_layout()
    return fig
