"""Exponentially weighted moving mean and variance: a z-score that forgets the past geometrically."""

from __future__ import annotations

import math

import numpy as np

from opsmind.core import ConfigError, FloatArray
from opsmind.detect._kernel import KernelDetector, jit, scale_floor
from opsmind.detect.base import DETECTORS, check_positive

__all__ = ["EWMA"]


@jit
def _ewma_run(xs: FloatArray, st: FloatArray, alpha: float, min_history: int, out: FloatArray,
              learn: bool) -> None:
    # st = [count, mean, variance, (1 - alpha) ** (count - 1)]
    for i in range(xs.shape[0]):
        x = xs[i]
        if not np.isfinite(x):
            out[i] = 0.0
            continue
        n, mean, var, decay = st[0], st[1], st[2], st[3]
        if n >= min_history:
            # The variance starts at 0, so it is biased low early on: divide by the weight it has gathered.
            var_hat = var / (1.0 - decay)
            out[i] = abs(x - mean) / max(math.sqrt(var_hat), scale_floor(mean))
        else:
            out[i] = 0.0
        if not learn:
            continue
        if n == 0:
            st[0], st[1], st[2], st[3] = 1.0, x, 0.0, 1.0
        else:
            diff = x - mean
            incr = alpha * diff
            st[0] = n + 1.0
            st[1] = mean + incr
            st[2] = (1.0 - alpha) * (var + diff * incr)
            st[3] = decay * (1.0 - alpha)


@DETECTORS.register("ewma")
class EWMA(KernelDetector):
    """Z-score ``|x - mean| / std`` against an exponentially weighted mean and variance.

    Each learned value moves the mean by ``alpha`` of its distance from it; the variance is the matching
    exponentially weighted variance (bias-corrected during the first ``~1/alpha`` values). The effective memory
    is about ``2/alpha - 1`` points. A floor on the standard deviation keeps a constant series at 0.

    Works well for: fast, memory-light monitoring of a level with Gaussian-like noise; gradual drifts (the mean
    follows them). Works poorly for: heavy-tailed noise and bursts (one outlier inflates the variance and masks
    the next ones for ~1/alpha points: prefer ``RollingMAD``), seasonal series.

    Parameters
    ----------
    alpha
        Smoothing factor in (0, 1): the weight of the newest value.
    min_history
        Rows score 0.0 until this many values have been learned (at least 2).

    Examples
    --------
    >>> import numpy as np
    >>> from opsmind.core import Frame
    >>> x = np.random.default_rng(1).normal(10.0, 1.0, size=400)
    >>> x[300] = 18.0
    >>> frame = Frame.from_arrays(np.arange(400) * 60 * 10**9, x)
    >>> scores = EWMA(alpha=0.05).score(frame)
    >>> int(np.argmax(scores)), bool(scores[300] > 5)
    (300, True)
    """

    def __init__(self, alpha: float = 0.05, min_history: int = 20) -> None:
        self.alpha = alpha
        self.min_history = min_history

    def _validate(self) -> None:
        if not isinstance(self.alpha, int | float | np.number) or not 0.0 < self.alpha < 1.0:
            raise ConfigError(f"alpha must be in (0, 1), got {self.alpha!r}")
        check_positive("min_history", self.min_history, integer=True)
        if self.min_history < 2:
            raise ConfigError(f"min_history must be at least 2, got {self.min_history}")

    def _init_state(self) -> None:
        self.state_ = np.zeros(4)  # [count, mean, variance, (1 - alpha) ** (count - 1)]

    def _run(self, ts: FloatArray, xs: FloatArray, out: FloatArray, learn: bool) -> None:
        _ewma_run(xs, self.state_, float(self.alpha), int(self.min_history), out, learn)
