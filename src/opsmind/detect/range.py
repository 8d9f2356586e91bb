"""Range excess: how far a value falls outside the range of every value learned so far.

The score is the distance outside ``[min, max]`` of the learned values, in units of that range
(0 inside the range). A new extreme is one of the most reliable signs that something changed; it is also how a
sensor that saturates, a counter that resets or a queue that overflows first shows up.

Works well for: spikes and dips to new levels, a metric leaving its historical envelope.
Works poorly for: anomalies inside the normal range (use :class:`~opsmind.detect.novelty.WindowNovelty`),
series that trend (every new high is "anomalous").
"""

from __future__ import annotations

import numpy as np

from opsmind.core import FloatArray, Frame
from opsmind.detect.base import DETECTORS, Detector, as_row, check_positive

__all__ = ["RangeExcess"]


@DETECTORS.register("range")
class RangeExcess(Detector):
    """Distance outside the learned ``[min, max]``, in units of the range.

    Parameters
    ----------
    warmup
        Rows learned before any non-zero score.

    Examples
    --------
    >>> det = RangeExcess(warmup=3)
    >>> for i, v in enumerate([1.0, 3.0, 2.0]):
    ...     det.learn_one(float(i), v)
    >>> det.score_one(3.0, 2.5), det.score_one(3.0, 5.0), det.score_one(3.0, 0.0)
    (0.0, 1.0, 0.5)
    """

    def __init__(self, warmup: int = 100) -> None:
        self.warmup = warmup

    def learn_one(self, t: float, x: float | FloatArray) -> None:
        v = float(as_row(x, 1)[0])
        if not np.isfinite(v):
            return
        if not hasattr(self, "n_"):
            check_positive("warmup", self.warmup, integer=True)
            self.n_, self.lo_, self.hi_ = 0, v, v
        self.n_ += 1
        self.lo_, self.hi_ = min(self.lo_, v), max(self.hi_, v)

    def score_one(self, t: float, x: float | FloatArray) -> float:
        v = float(as_row(x, 1)[0])
        if not np.isfinite(v) or getattr(self, "n_", 0) < self.warmup or self.hi_ <= self.lo_:
            return 0.0
        width = self.hi_ - self.lo_
        return max(v - self.hi_, self.lo_ - v, 0.0) / width

    def score(self, frame: Frame) -> FloatArray:
        self._check_frame(frame)
        x = frame.values[:, 0]
        ok = np.isfinite(x)
        out = np.zeros(len(x))
        xs = x[ok]
        if xs.size == 0:
            return out
        if not hasattr(self, "n_"):
            check_positive("warmup", self.warmup, integer=True)
            self.n_, self.lo_, self.hi_ = 0, float(xs[0]), float(xs[0])
        # state before each row: running min/max including what was learned earlier
        lo = np.minimum.accumulate(np.r_[self.lo_, xs])[:-1]
        hi = np.maximum.accumulate(np.r_[self.hi_, xs])[:-1]
        count = self.n_ + np.arange(xs.size)
        width = hi - lo
        excess = np.maximum(np.maximum(xs - hi, lo - xs), 0.0)
        valid = (count >= self.warmup) & (width > 0)
        scores = np.where(valid, excess / np.where(width > 0, width, 1.0), 0.0)
        out[ok] = scores
        self.n_ += int(xs.size)
        self.lo_, self.hi_ = float(min(self.lo_, xs.min())), float(max(self.hi_, xs.max()))
        return out
