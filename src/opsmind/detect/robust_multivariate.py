"""Robust per-dimension deviation, smoothed in time and summed over dimensions: opsmind's multivariate default."""

from __future__ import annotations

import numpy as np

from opsmind.core import ConfigError, FloatArray, Frame
from opsmind.detect._buffered import BufferedDetector, window_mean
from opsmind.detect.base import DETECTORS

__all__ = ["RobustMultivariate", "center_scale", "excess_terms", "score_from_deviations"]


def center_scale(rows: FloatArray, quantile: float, min_scale: float) -> tuple[FloatArray, FloatArray]:
    """Per-column median and robust scale (see :class:`RobustMultivariate` for the fallbacks and the floor)."""
    center = np.median(rows, axis=0)
    dev = np.abs(rows - center)
    rarer = 1.0 - (1.0 - quantile) / 10.0
    q = np.quantile(dev, [quantile, rarer, 1.0], axis=0)
    scale = np.where(q[0] > 0, q[0], np.where(q[1] > 0, q[1], q[2]))
    return center, np.maximum(scale, min_scale * np.maximum(1.0, np.abs(center)))


def excess_terms(z: FloatArray) -> FloatArray:
    """Per-dimension score terms ``log(1 + max(z - 1, 0))`` of smoothed deviations ``z``."""
    out: FloatArray = np.log1p(np.maximum(z - 1.0, 0.0))
    return out


def score_from_deviations(z: FloatArray) -> FloatArray:
    """Row scores from smoothed deviations ``(n, d)``: the sum of :func:`excess_terms` (what ``score`` returns)."""
    out: FloatArray = np.ascontiguousarray(excess_terms(z)).sum(axis=1)
    return out


@DETECTORS.register("robust_multivariate")
class RobustMultivariate(BufferedDetector):
    """Sum over dimensions of how far each one strays beyond its normal band.

    At each refit, every dimension ``j`` gets a centre ``m_j`` (the median of the buffered rows) and a scale
    ``s_j``: the ``quantile`` of ``|x_j - m_j|`` over the buffer, so that a value at the edge of the training's
    central ``quantile`` band has deviation 1. A sparse dimension (mostly one value, rare bursts) has a zero
    quantile; its scale falls back to the next positive of the 10x-rarer quantile and the largest deviation seen,
    and is never below ``min_scale * max(1, |m_j|)``. A row's deviation ``z_j = |x_j - m_j| / s_j`` is averaged
    over the last ``window`` rows (a causal smoothing: incidents last minutes, single noisy samples do not), and
    the score is

        ``sum_j log(1 + max(z̃_j - 1, 0))``

    i.e. only deviations beyond the normal band count, each on a log scale so that one dimension that was
    constant in training cannot outweigh many that moved together (the log is the tail exponent of a power-law
    tail: ``log`` of the ratio to the band edge). ``explain_one`` returns the per-dimension terms of that sum, so
    the attribution ranks exactly the dimensions that made the score.

    Works well when normal behaviour is a stable band per metric (machine metrics: CPU, memory, disk, network)
    and faults push one or several metrics outside it. It does not see broken correlations between dimensions
    that each stay within their band, and it learns every scored row (rows of a long incident shift the centre
    and the scale at the next refit; ``buffer`` should span much more than an incident).

    Parameters
    ----------
    window : int
        Rows averaged per deviation (including the current one).
    quantile : float
        Coverage of the normal band per dimension, in (0, 1).
    min_scale : float
        Relative floor of the scale (dimensions constant in training).
    buffer : int
        Most recent learned rows used to fit the centres and scales.
    refit_every : int
        Learned rows between refits.
    min_train : int
        Rows to learn before the first fit (scores are 0.0 until then).

    Examples
    --------
    >>> import numpy as np
    >>> from opsmind.core import Frame
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(400, 4))
    >>> X[350:360, 2] += 8.0
    >>> f = Frame.from_arrays(np.arange(400) * 60_000_000_000, X)
    >>> det = RobustMultivariate(min_train=200)
    >>> s = det.score(f.slice(0, 355))
    >>> int(np.argmax(s)), int(np.argmax(det.explain_one(0.0, X[355])))
    (354, 2)
    """

    def __init__(
        self,
        window: int = 5,
        quantile: float = 0.99,
        min_scale: float = 1e-3,
        buffer: int = 30_000,
        refit_every: int = 1440,
        min_train: int = 100,
    ) -> None:
        super().__init__(window=window, buffer=buffer, refit_every=refit_every, min_train=min_train)
        self.quantile = quantile
        self.min_scale = min_scale

    def _fit(self, rows: FloatArray) -> None:
        if not 0.0 < self.quantile < 1.0:
            raise ConfigError(f"quantile must be in (0, 1), got {self.quantile!r}")
        if not self.min_scale > 0:
            raise ConfigError(f"min_scale must be positive, got {self.min_scale!r}")
        self.center_, self.scale_ = center_scale(rows, self.quantile, self.min_scale)

    def _deviation_rows(self, H: FloatArray, h: int) -> FloatArray:
        z = np.abs(H - self.center_) / self.scale_
        return window_mean(z, h, self.window)

    def _explain_rows(self, H: FloatArray, h: int) -> FloatArray:
        return excess_terms(self._deviation_rows(H, h))

    def _score_rows(self, H: FloatArray, h: int) -> FloatArray:
        return score_from_deviations(self._deviation_rows(H, h))

    def deviations(self, frame: Frame) -> FloatArray:
        """Prequential smoothed deviations ``z̃`` ``(n, d)`` of every row; learns the frame like ``score``.

        The score of a row is a function of its deviations, so they rank its dimensions (ties among the
        dimensions inside their band included).
        """
        out = np.zeros((len(frame), frame.ndim), dtype=np.float64)
        self._run(frame, self._deviation_rows, out)
        return out
