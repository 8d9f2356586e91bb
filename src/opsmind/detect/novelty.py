"""Window novelty: how far the latest window of values is from its nearest neighbour in the past.

The score of row ``i`` is the Euclidean distance (per point) from the window of the last ``m`` values ending at
``i`` to the closest window that ended at least ``m`` rows earlier (no trivial self-match), divided by a
*reference novelty*: the largest such distance seen so far. A score of 1 means "as unlike anything seen before
as the most novel moment so far". Scores start after ``warmup`` rows; the reference's resting level (its *base*)
keeps following the largest distance for ``calibration`` rows (by default the warm-up), and after that the
reference relaxes slowly (``relax`` per row) back towards that base, so one large anomaly does not blind the
detector for the rest of the series. A calibration longer than the warm-up lets the base see more of the series'
ordinary variety (a second or third day, say) before it is frozen, while scoring already runs.

A second calibration runs alongside (after HTM's *anomaly likelihood*, Ahmad et al. 2017): the mean raw novelty of
the last ``short`` rows is compared with the mean and spread of the raw novelties of the previous
``likelihood_window`` rows, and its Gaussian tail probability ``q`` becomes ``log q / log tail`` novelty units
(1.0 when ``q == tail``). This catches a *sustained* rise in novelty that never beats the largest single distance
seen, e.g. a noisy series turning noisier. The score is the larger of the two calibrations. Spreads under
1 % of the reference novelty count as rounding, so a perfectly repetitive series stays quiet.

With ``scale > 1`` the series is first smoothed by a causal moving mean of ``scale`` rows and the window takes
every ``scale``-th smoothed value, so the window spans ``m * scale`` rows: this sees slower shape changes and
ignores point noise. This is the left (causal) matrix profile of a non-normalised series, searched over the last
``lookback`` rows.

Works well for: changes in the shape of a pattern, new levels, spikes, flat-lines in a normally moving series.
Works poorly for: slow drifts within the range of past windows, series too short to have a past (it scores 0
until ``warmup`` rows have been learned).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from opsmind.core import ConfigError, FloatArray, Frame
from opsmind.detect.base import DETECTORS, Detector, as_row, check_positive

__all__ = ["WindowNovelty"]

SD_FLOOR = 0.01  # the likelihood ignores spreads under 1 % of the reference novelty


@njit(cache=True)
def _log_tail(z: float) -> float:  # pragma: no cover - compiled
    """``log(1 - Phi(z))`` for a standard normal ``Phi``, accurate far into the tail."""
    if z < 5.0:
        return math.log(0.5 * math.erfc(z / math.sqrt(2.0)))
    z2 = z * z
    return -0.5 * z2 - math.log(z) - 0.5 * math.log(2.0 * math.pi) + math.log(1.0 - 1.0 / z2 + 3.0 / (z2 * z2))


@njit(cache=True)
def _novelty(
    v: FloatArray, start: int, n0: int, m: int, stride: int, lookback: int, warmup: int,
    relax: float, ref: float, base: float, learn: bool,
    ring: FloatArray, sums: FloatArray, short: int, log_tail0: float, sd_floor: float, calibration: int,
) -> tuple[FloatArray, float, float]:  # pragma: no cover - compiled
    """Scores of ``v[start:]``; ``v[:start]`` is remembered history; ``n0`` counts rows learned before ``start``.

    ``ring`` holds the last ``len(ring)`` raw novelties (row ``c`` at ``ring[c % len(ring)]``) and ``sums`` their
    sum and sum of squares; both are updated in place when ``learn``.
    """
    n = v.shape[0]
    out = np.zeros(n - start)
    span = m * stride
    hist = ring.shape[0]
    for i in range(start, n):
        count = n0 + (i - start)  # rows learned before row i
        nn = 0.0
        if count >= 2 * span:
            best = np.inf
            jmin = max(i - lookback, (m - 1) * stride, i - count + (m - 1) * stride)
            j = i - span
            while j >= jmin:
                d = 0.0
                for k in range(m):
                    t = v[i - k * stride] - v[j - k * stride]
                    d += t * t
                    if d >= best:
                        break
                if d < best:
                    best = d
                j -= stride
            if best < np.inf:
                nn = math.sqrt(best / m)
        if count >= warmup:
            score = nn / ref if ref > 0.0 else 0.0
            if hist > 0:
                # likelihood: tail probability of the short-term mean novelty under the recent distribution
                k_hist = min(count, hist)
                mu = sums[0] / k_hist
                # spread floor: differences under 1 % of the largest novelty seen are rounding, not signal
                sd = max(math.sqrt(max(sums[1] / k_hist - mu * mu, 0.0)), sd_floor * ref)
                k_short = min(count, short - 1)
                s = nn
                for k in range(1, k_short + 1):
                    s += ring[(count - k) % hist]
                s /= k_short + 1
                if sd > 0.0:
                    score = max(score, _log_tail((s - mu) / sd) / log_tail0)
            out[i - start] = score
        if learn:
            if hist > 0:
                slot = count % hist
                if count >= hist:
                    old = ring[slot]
                    sums[0] -= old
                    sums[1] -= old * old
                ring[slot] = nn
                sums[0] += nn
                sums[1] += nn * nn
            if count < calibration:
                if nn > ref:
                    ref = nn
                base = ref
            elif nn > ref:
                ref = nn
            else:
                ref = max(base, ref - (ref - base) * relax)
    return out, ref, base


@njit(cache=True)
def _smooth(raw: FloatArray, start: int, width: int) -> FloatArray:  # pragma: no cover - compiled
    """Causal moving mean of ``width`` rows for ``raw[start:]`` (fewer rows at the very beginning)."""
    n = raw.shape[0]
    out = np.empty(n - start)
    for i in range(start, n):
        lo = max(0, i - width + 1)
        s = 0.0
        for j in range(lo, i + 1):
            s += raw[j]
        out[i - start] = s / (i + 1 - lo)
    return out


@DETECTORS.register("novelty")
class WindowNovelty(Detector):
    """Nearest-neighbour novelty of the latest window, relative to the most novel window seen so far.

    Parameters
    ----------
    m
        Window length, in (smoothed) points.
    scale
        Smoothing width and stride: the window spans ``m * scale`` rows.
    lookback
        How many past rows are searched for a neighbour (cost per row is ``lookback / scale``).
    warmup
        Rows learned before any non-zero score.
    relax
        Per-row fraction by which the reference novelty returns towards its base level.
    likelihood_window
        Past raw novelties whose mean and spread calibrate the likelihood (0 turns the likelihood off).
    short
        Rows averaged into the short-term novelty the likelihood tests.
    tail
        Tail probability worth one novelty unit.
    calibration
        Rows during which the base level of the reference novelty follows the largest novelty seen (``None``:
        the warm-up; values below the warm-up count as the warm-up).

    Examples
    --------
    >>> import numpy as np
    >>> t = np.arange(600) * 60.0
    >>> x = np.sin(np.arange(600) / 10.0)
    >>> x[500:505] += 3.0                      # a burst the sine never showed
    >>> det = WindowNovelty(m=8, warmup=100)
    >>> s = det.score(Frame.from_arrays(t.astype("datetime64[s]"), x))
    >>> int(np.argmax(s)) in range(500, 513), bool(s[:500].max() < s.max())
    (True, True)
    """

    def __init__(
        self, m: int = 8, scale: int = 1, lookback: int = 3000, warmup: int = 300, relax: float = 0.001,
        likelihood_window: int = 2000, short: int = 10, tail: float = 1e-7, calibration: int | None = None,
    ) -> None:
        self.m = m
        self.scale = scale
        self.lookback = lookback
        self.warmup = warmup
        self.relax = relax
        self.likelihood_window = likelihood_window
        self.short = short
        self.tail = tail
        self.calibration = calibration

    def _validate(self) -> None:
        for name in ("m", "scale", "lookback", "warmup", "short"):
            check_positive(name, getattr(self, name), integer=True)
        if not 0.0 <= self.relax < 1.0:
            raise ConfigError(f"relax must be in [0, 1), got {self.relax!r}")
        if not isinstance(self.likelihood_window, int) or self.likelihood_window < 0:
            raise ConfigError(f"likelihood_window must be a non-negative integer, got {self.likelihood_window!r}")
        if not 0.0 < self.tail < 0.5:
            raise ConfigError(f"tail must be in (0, 0.5), got {self.tail!r}")
        if self.calibration is not None:
            check_positive("calibration", self.calibration, integer=True)

    def _step(self, x: FloatArray, learn: bool) -> FloatArray:
        """Score (and optionally learn) the finite values ``x``; returns their scores."""
        if not hasattr(self, "n_"):
            self._validate()
            if not learn:
                return np.zeros(x.shape[0])
            self.n_ = 0
            self.raw_: FloatArray = np.zeros(0)
            self.smooth_: FloatArray = np.zeros(0)
            self.ref_ = 0.0
            self.base_ = 0.0
            self.ring_: FloatArray = np.zeros(self.likelihood_window)
            self.sums_: FloatArray = np.zeros(2)
        raw = np.concatenate([self.raw_, x])
        sm = _smooth(raw, self.raw_.shape[0], self.scale) if self.scale > 1 else x.copy()
        hist = np.concatenate([self.smooth_, sm])
        ring, sums = (self.ring_, self.sums_) if learn else (self.ring_.copy(), self.sums_.copy())
        scores, ref, base = _novelty(
            hist, self.smooth_.shape[0], self.n_, self.m, self.scale, self.lookback, self.warmup,
            self.relax, self.ref_, self.base_, learn, ring, sums, self.short, math.log(self.tail), SD_FLOOR,
            self.warmup if self.calibration is None else max(int(self.calibration), self.warmup),
        )
        if learn:
            keep = self.lookback + (self.m + 1) * self.scale
            self.raw_ = raw[-self.scale :].copy()
            self.smooth_ = hist[-keep:].copy()
            self.ref_, self.base_ = float(ref), float(base)
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

    def learn(self, frame: Frame) -> None:
        self.score(frame)
