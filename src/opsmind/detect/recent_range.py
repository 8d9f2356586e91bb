"""Recent range excess: how far a value falls outside the range of the last ``memory`` values.

Like :class:`~opsmind.detect.range.RangeExcess`, but the envelope is that of the recent past rather than of all
time: the score is the distance outside ``[min, max]`` of the previous ``memory`` learned values, in units of
that range (0 inside it). A series that once spiked, or that moved to a new level, gets a tighter envelope again
once the old extremes leave the memory, so a later excursion beyond what the series has been doing *lately* still
shows; the price is that a return to a level last seen more than ``memory`` rows ago scores too.

Works well for: spikes and dips beyond the recent envelope, a metric leaving its recent operating range.
Works poorly for: anomalies inside the normal range (use :class:`~opsmind.detect.novelty.WindowNovelty`),
series that trend (every new high is "anomalous").
"""

from __future__ import annotations

import numpy as np
from numba import njit

from opsmind.core import FloatArray, Frame
from opsmind.detect.base import DETECTORS, Detector, as_row, check_positive

__all__ = ["RecentRangeExcess"]


@njit(cache=True)
def _excess(v: FloatArray, start: int, n0: int, memory: int, warmup: int) -> FloatArray:  # pragma: no cover
    """Scores of ``v[start:]`` against the ``memory`` values before each; ``v[:start]`` is remembered history.

    ``n0`` counts the values learned before ``v[start]``. Sliding minimum and maximum via monotonic queues.
    """
    n = v.shape[0]
    out = np.zeros(n - start)
    qmax = np.empty(n, dtype=np.int64)
    qmin = np.empty(n, dtype=np.int64)
    hmax, tmax, hmin, tmin = 0, 0, 0, 0
    for i in range(n):
        while hmax < tmax and qmax[hmax] < i - memory:
            hmax += 1
        while hmin < tmin and qmin[hmin] < i - memory:
            hmin += 1
        if i >= start and n0 + (i - start) >= warmup and hmax < tmax:
            hi = v[qmax[hmax]]
            lo = v[qmin[hmin]]
            width = hi - lo
            if width > 0.0:
                out[i - start] = max(v[i] - hi, lo - v[i], 0.0) / width
        while hmax < tmax and v[qmax[tmax - 1]] <= v[i]:
            tmax -= 1
        qmax[tmax] = i
        tmax += 1
        while hmin < tmin and v[qmin[tmin - 1]] >= v[i]:
            tmin -= 1
        qmin[tmin] = i
        tmin += 1
    return out


@DETECTORS.register("recent_range")
class RecentRangeExcess(Detector):
    """Distance outside the ``[min, max]`` of the last ``memory`` learned values, in units of that range.

    Parameters
    ----------
    memory
        How many of the most recent learned values make the envelope.
    warmup
        Values learned before any non-zero score.

    Examples
    --------
    >>> det = RecentRangeExcess(memory=3, warmup=3)
    >>> for i, v in enumerate([10.0, 1.0, 3.0, 2.0]):
    ...     det.learn_one(float(i), v)
    >>> det.score_one(4.0, 2.5), det.score_one(4.0, 5.0), det.score_one(4.0, 0.5)   # the 10 is forgotten
    (0.0, 1.0, 0.25)
    """

    def __init__(self, memory: int = 3000, warmup: int = 100) -> None:
        self.memory = memory
        self.warmup = warmup

    def _step(self, x: FloatArray, learn: bool) -> FloatArray:
        """Score (and optionally learn) the finite values ``x``."""
        if not hasattr(self, "n_"):
            check_positive("memory", self.memory, integer=True)
            check_positive("warmup", self.warmup, integer=True)
            if not learn:
                return np.zeros(x.shape[0])
            self.n_ = 0
            self.hist_: FloatArray = np.zeros(0)
        v = np.concatenate([self.hist_, x])
        scores = _excess(v, self.hist_.shape[0], self.n_, int(self.memory), int(self.warmup))
        if learn:
            self.hist_ = v[-int(self.memory) :].copy()
            self.n_ += x.shape[0]
        return scores

    def learn_one(self, t: float, x: float | FloatArray) -> None:
        v = as_row(x, 1)
        if np.isfinite(v[0]):
            self._step(v, learn=True)

    def score_one(self, t: float, x: float | FloatArray) -> float:
        v = as_row(x, 1)
        if not np.isfinite(v[0]):
            return 0.0
        return float(self._step(v, learn=False)[0])

    def score(self, frame: Frame) -> FloatArray:
        self._check_frame(frame)
        x = frame.values[:, 0]
        ok = np.isfinite(x)
        out = np.zeros(len(x))
        out[ok] = self._step(x[ok], learn=True)
        return out
