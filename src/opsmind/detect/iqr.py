"""Rolling interquartile range: how far a value falls outside the recent [Q1, Q3] band, in IQR units."""

from __future__ import annotations

import numpy as np

from opsmind.core import ConfigError, FloatArray
from opsmind.detect._kernel import (
    IntArray,
    KernelDetector,
    jit,
    robust_scale,
    window_median,
    window_push,
    window_quantile,
)
from opsmind.detect.base import DETECTORS, check_positive

__all__ = ["RollingIQR"]

# IQR of a normal distribution in standard deviations: used when the window's IQR is zero.
_IQR_PER_SIGMA = 1.349


@jit
def _iqr_run(xs: FloatArray, ring: FloatArray, srt: FloatArray, pos: IntArray, min_history: int, k: float,
             out: FloatArray, learn: bool) -> None:
    for i in range(xs.shape[0]):
        x = xs[i]
        if not np.isfinite(x):
            out[i] = 0.0
            continue
        n = pos[0]
        if n >= min_history:
            q1 = window_quantile(srt, n, 0.25)
            q3 = window_quantile(srt, n, 0.75)
            iqr = q3 - q1
            if not iqr > 0.0:  # more than half the window is one value: fall back to a robust scale
                iqr = _IQR_PER_SIGMA * robust_scale(srt, n, window_median(srt, n))
            out[i] = max(0.0, q1 - k * iqr - x, x - q3 - k * iqr) / iqr
        else:
            out[i] = 0.0
        if learn:
            window_push(ring, srt, pos, x)


@DETECTORS.register("iqr")
class RollingIQR(KernelDetector):
    """Distance outside the band ``[Q1 - k*IQR, Q3 + k*IQR]`` of the last ``window`` values, in IQR units.

    With the default ``k = 0`` every value outside the middle half of the recent past gets a positive score
    that grows linearly with its distance; ``k = 1.5`` gives Tukey's fences (only "outliers" score above 0).
    Quartiles are robust to up to a quarter of the window being anomalous. A zero IQR (a mostly constant
    window) falls back to a MAD-based scale with a tiny floor, so a constant series scores 0.

    Works well for: skewed or heavy-tailed noise around a stable level (latencies, queue lengths).
    Works poorly for: seasonal series, drifts, and dips inside the band (values between Q1 and Q3 score 0).

    Parameters
    ----------
    window
        Number of most recent learned values the quartiles are computed over.
    k
        Fence multiplier: the band is widened by ``k`` IQRs on each side (``>= 0``).
    min_history
        Rows score 0.0 until this many values have been learned (at most ``window``).

    Examples
    --------
    >>> import numpy as np
    >>> from opsmind.core import Frame
    >>> x = np.random.default_rng(0).normal(size=300)
    >>> x[200] = 8.0
    >>> frame = Frame.from_arrays(np.arange(300) * 60 * 10**9, x)
    >>> scores = RollingIQR(window=100, k=1.5).score(frame)
    >>> int(np.argmax(scores)), float(np.median(scores))
    (200, 0.0)
    """

    def __init__(self, window: int = 200, k: float = 0.0, min_history: int = 20) -> None:
        self.window = window
        self.k = k
        self.min_history = min_history

    def _validate(self) -> None:
        check_positive("window", self.window, integer=True)
        check_positive("min_history", self.min_history, integer=True)
        if self.min_history > self.window:
            raise ConfigError(f"min_history ({self.min_history}) must not exceed window ({self.window})")
        if not isinstance(self.k, int | float | np.number) or not self.k >= 0:
            raise ConfigError(f"k must be a number >= 0, got {self.k!r}")

    def _init_state(self) -> None:
        self.ring_ = np.zeros(int(self.window))
        self.sorted_ = np.zeros(int(self.window))
        self.pos_ = np.zeros(2, dtype=np.int64)  # [count, head]

    def _run(self, ts: FloatArray, xs: FloatArray, out: FloatArray, learn: bool) -> None:
        _iqr_run(xs, self.ring_, self.sorted_, self.pos_, int(self.min_history), float(self.k), out, learn)
