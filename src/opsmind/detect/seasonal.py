"""Seasonal profile: a robust location and scale per time-of-day (or time-of-week) bin, learned from past periods."""

from __future__ import annotations

import math

import numpy as np

from opsmind.core import ConfigError, FloatArray
from opsmind.detect._kernel import IntArray, KernelDetector, jit, robust_scale, window_median, window_push
from opsmind.detect.base import DETECTORS, check_positive

__all__ = ["SeasonalProfile"]


@jit
def _seasonal_run(ts: FloatArray, xs: FloatArray, ring: FloatArray, srt: FloatArray, pos: IntArray,
                  g_ring: FloatArray, g_srt: FloatArray, g_pos: IntArray, period_s: float, min_bin_count: int,
                  min_periods: int, min_history: int, out: FloatArray, learn: bool) -> None:
    nbins = ring.shape[0]
    for i in range(xs.shape[0]):
        x = xs[i]
        t = ts[i]
        if not (np.isfinite(x) and np.isfinite(t)):
            out[i] = 0.0
            continue
        cycle = math.floor(t / period_s)
        b = int((t - cycle * period_s) / period_s * nbins)
        b = min(max(b, 0), nbins - 1)
        n = pos[b, 0]
        if n >= min_bin_count and pos[b, 2] >= min_periods:
            m = window_median(srt[b], n)
            out[i] = abs(x - m) / robust_scale(srt[b], n, m)
        elif g_pos[0] >= min_history:
            m = window_median(g_srt, g_pos[0])
            out[i] = abs(x - m) / robust_scale(g_srt, g_pos[0], m)
        else:
            out[i] = 0.0
        if learn:
            window_push(ring[b], srt[b], pos[b], x)
            if pos[b, 3] != cycle:  # first value of this bin in this period
                pos[b, 3] = cycle
                pos[b, 2] += 1
            window_push(g_ring, g_srt, g_pos, x)


@DETECTORS.register("seasonal")
class SeasonalProfile(KernelDetector):
    """Robust z-score against the profile of the same time-of-period bin in past periods.

    The period (a day by default, ``period_s=604800`` for a week) is cut into ``bins`` equal bins by the
    timestamp, not by the row count, so gaps and irregular sampling are fine. Each bin keeps its last
    ``bin_window`` values; the score is ``|x - median_bin| / (1.4826 * MAD_bin)``. A bin is used once it holds
    ``min_bin_count`` values from at least ``min_periods`` distinct periods; until then the score falls back
    to the same robust z-score over the last ``window`` values of any bin (like ``RollingMAD``).

    Works well for: metrics driven by a daily or weekly rhythm (traffic, batch jobs): a normal daily peak is
    not flagged, while the same value at night is. Works poorly for: the first period (fallback only), a
    rhythm that shifts in phase or changes with holidays, trends faster than ``bin_window`` values of a bin
    (the profile lags), and bins so wide that the rhythm changes a lot within one.

    Parameters
    ----------
    period_s
        Length of the period in seconds.
    bins
        Number of time-of-period bins.
    bin_window
        Number of most recent values each bin keeps.
    min_bin_count
        Values a bin needs before it is used.
    min_periods
        Distinct periods a bin needs data from before it is used.
    window
        Number of most recent values of the global fallback baseline.
    min_history
        Rows score 0.0 until the fallback has this many values (at most ``window``).

    Examples
    --------
    >>> import numpy as np
    >>> from opsmind.core import Frame
    >>> minutes = np.arange(4 * 1440)
    >>> x = np.where((minutes % 1440) // 60 == 12, 50.0, 10.0)  # a busy hour at noon, every day
    >>> x = x + np.random.default_rng(0).normal(size=x.size)
    >>> x[3 * 1440 + 180] = 30.0  # the same load at 3 am is not normal
    >>> frame = Frame.from_arrays(minutes * 60 * 10**9, x)
    >>> scores = SeasonalProfile().score(frame)
    >>> day4 = scores[3 * 1440:]
    >>> int(np.argmax(day4)) == 180, bool(day4[720:780].max() < 5)
    (True, True)
    """

    def __init__(self, period_s: float = 86400.0, bins: int = 24, bin_window: int = 256, min_bin_count: int = 10,
                 min_periods: int = 2, window: int = 200, min_history: int = 20) -> None:
        self.period_s = period_s
        self.bins = bins
        self.bin_window = bin_window
        self.min_bin_count = min_bin_count
        self.min_periods = min_periods
        self.window = window
        self.min_history = min_history

    def _validate(self) -> None:
        check_positive("period_s", self.period_s)
        for name in ("bins", "bin_window", "min_bin_count", "min_periods", "window", "min_history"):
            check_positive(name, getattr(self, name), integer=True)
        if self.min_bin_count > self.bin_window:
            raise ConfigError(f"min_bin_count ({self.min_bin_count}) must not exceed bin_window ({self.bin_window})")
        if self.min_history > self.window:
            raise ConfigError(f"min_history ({self.min_history}) must not exceed window ({self.window})")

    def _init_state(self) -> None:
        self.ring_ = np.zeros((int(self.bins), int(self.bin_window)))
        self.sorted_ = np.zeros((int(self.bins), int(self.bin_window)))
        self.pos_ = np.zeros((int(self.bins), 4), dtype=np.int64)  # [count, head, periods seen, last period]
        self.pos_[:, 3] = np.iinfo(np.int64).min
        self.global_ring_ = np.zeros(int(self.window))
        self.global_sorted_ = np.zeros(int(self.window))
        self.global_pos_ = np.zeros(2, dtype=np.int64)

    def _run(self, ts: FloatArray, xs: FloatArray, out: FloatArray, learn: bool) -> None:
        _seasonal_run(ts, xs, self.ring_, self.sorted_, self.pos_, self.global_ring_, self.global_sorted_,
                      self.global_pos_, float(self.period_s), int(self.min_bin_count), int(self.min_periods),
                      int(self.min_history), out, learn)
