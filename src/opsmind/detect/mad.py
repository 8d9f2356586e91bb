"""Rolling median absolute deviation: a robust z-score against the recent past."""

from __future__ import annotations

import numpy as np

from opsmind.core import ConfigError, FloatArray
from opsmind.detect._kernel import IntArray, KernelDetector, jit, robust_scale, window_median, window_push
from opsmind.detect.base import DETECTORS, check_positive

__all__ = ["RollingMAD"]


@jit
def _mad_run(xs: FloatArray, ring: FloatArray, srt: FloatArray, pos: IntArray, min_history: int,
             out: FloatArray, learn: bool) -> None:
    for i in range(xs.shape[0]):
        x = xs[i]
        if not np.isfinite(x):
            out[i] = 0.0
            continue
        n = pos[0]
        if n >= min_history:
            m = window_median(srt, n)
            out[i] = abs(x - m) / robust_scale(srt, n, m)
        else:
            out[i] = 0.0
        if learn:
            window_push(ring, srt, pos, x)


@DETECTORS.register("mad")
class RollingMAD(KernelDetector):
    """Robust z-score ``|x - median| / (1.4826 * MAD)`` over the last ``window`` learned values.

    The median and the median absolute deviation (MAD) ignore up to half the window being outliers, so a burst
    of anomalies does not hide itself by inflating the scale (as it does for a mean/standard deviation). When
    more than half the window is one value (MAD = 0) the scale falls back to the mean absolute deviation, and
    it is never below a tiny floor, so a constant series scores 0 and a departure from it a large finite number.

    Works well for: a level that is stable over ``window`` points with spikes or dips, heavy-tailed noise.
    Works poorly for: seasonal series (a normal daily peak is far from the recent median: use
    ``SeasonalProfile``), slow drifts (the window follows them), and changes in variance only.

    Parameters
    ----------
    window
        Number of most recent learned values the median and MAD are computed over.
    min_history
        Rows score 0.0 until this many values have been learned (at most ``window``).

    Examples
    --------
    >>> import numpy as np
    >>> from opsmind.core import Frame
    >>> x = np.sin(np.arange(300) / 10.0)
    >>> x[250] = 5.0
    >>> frame = Frame.from_arrays(np.arange(300) * 60 * 10**9, x)
    >>> scores = RollingMAD(window=100).score(frame)
    >>> int(np.argmax(scores)), bool(scores[250] > 3)
    (250, True)
    """

    def __init__(self, window: int = 200, min_history: int = 20) -> None:
        self.window = window
        self.min_history = min_history

    def _validate(self) -> None:
        check_positive("window", self.window, integer=True)
        check_positive("min_history", self.min_history, integer=True)
        if self.min_history > self.window:
            raise ConfigError(f"min_history ({self.min_history}) must not exceed window ({self.window})")

    def _init_state(self) -> None:
        self.ring_ = np.zeros(int(self.window))
        self.sorted_ = np.zeros(int(self.window))
        self.pos_ = np.zeros(2, dtype=np.int64)  # [count, head]

    def _run(self, ts: FloatArray, xs: FloatArray, out: FloatArray, learn: bool) -> None:
        _mad_run(xs, self.ring_, self.sorted_, self.pos_, int(self.min_history), out, learn)
