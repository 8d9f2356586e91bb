"""Shared machinery of the multivariate detectors: a bounded training buffer refit on a schedule.

A buffered detector keeps the last ``buffer`` learned rows (raw values) and the last ``window - 1`` of them as
context for windowed features. ``learn_one`` appends a row and, once ``min_train`` rows were seen, refits the model
on the buffer every ``refit_every`` rows. ``score_one`` scores a row with the last fitted model and the context
rows, so it never sees the future. The batch path cuts a frame at the rows where a refit is due, scores each
chunk in one vectorised call and learns it, which gives the same numbers as the loop as long as a subclass scores
each row from its own window with elementwise arithmetic (see :func:`window_mean`).
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable

import numpy as np

from opsmind.core import ConfigError, DataError, FloatArray, Frame
from opsmind.detect.base import Detector, as_row, check_positive

__all__ = ["BufferedDetector", "feature_attribution", "window_mean", "windowed_features"]


def window_mean(H: FloatArray, h: int, window: int) -> FloatArray:
    """Mean of each row of ``H[h:]`` over itself and up to ``window - 1`` rows before it.

    The sum is accumulated in one fixed order (newest first), so one row gives the same bits whether it is
    computed alone or inside a long batch.
    """
    n = H.shape[0] - h
    acc = H[h:].copy()
    count = np.ones(n, dtype=np.float64)
    for k in range(1, window):
        idx = np.arange(h, H.shape[0]) - k
        ok = idx >= 0
        acc[ok] += H[idx[ok]]
        count[ok] += 1.0
    out: FloatArray = acc / count[:, None]
    return out


def windowed_features(H: FloatArray, h: int, window: int) -> FloatArray:
    """Features of rows ``H[h:]``: the values, their :func:`window_mean` and the change from the previous row.

    Columns are ``[x_1..x_d, mean_1..mean_d, delta_1..delta_d]``; the first row of ``H`` has delta 0.
    """
    cur = H[h:]
    prev = np.concatenate([H[:1], H[:-1]])[h:]
    return np.concatenate([cur, window_mean(H, h, window), cur - prev], axis=1)


def feature_attribution(feats: FloatArray, center: FloatArray, scale: FloatArray, score: FloatArray) -> FloatArray:
    """Per-dimension shares of ``score`` from the robust deviation of :func:`windowed_features`.

    Each dimension gets the mean over its three features of ``log(1 + |f - center| / scale)``; the shares are
    rescaled so the dimensions of a row sum to its score.
    """
    d = feats.shape[1] // 3
    per_dim = np.log1p(np.abs(feats - center) / scale).reshape(len(feats), 3, d).mean(axis=1)
    total = per_dim.sum(axis=1, keepdims=True)
    out: FloatArray = np.where(total > 0, per_dim / np.where(total > 0, total, 1.0) * score[:, None], 0.0)
    return out


class BufferedDetector(Detector):
    """A multivariate detector learning by a bounded buffer of rows and a periodic refit (abstract)."""

    multivariate = True

    def __init__(self, window: int, buffer: int, refit_every: int, min_train: int) -> None:
        self.window = window
        self.buffer = buffer
        self.refit_every = refit_every
        self.min_train = min_train

    # --- what a subclass provides -----------------------------------------------------------------------

    @abstractmethod
    def _fit(self, rows: FloatArray) -> None:
        """Fit the model on the buffered rows (oldest first)."""

    @abstractmethod
    def _score_rows(self, H: FloatArray, h: int) -> FloatArray:
        """Scores of rows ``H[h:]``; ``H[:h]`` are the context rows learned before them."""

    @abstractmethod
    def _explain_rows(self, H: FloatArray, h: int) -> FloatArray:
        """Per-column contributions ``(len(H) - h, d)`` of rows ``H[h:]``."""

    # --- state ------------------------------------------------------------------------------------------

    def _init_state(self, ndim: int) -> None:
        check_positive("window", self.window, integer=True)
        check_positive("buffer", self.buffer, integer=True)
        check_positive("refit_every", self.refit_every, integer=True)
        check_positive("min_train", self.min_train, integer=True)
        if self.buffer < self.window:
            raise ConfigError(f"buffer ({self.buffer}) must hold at least one window ({self.window} rows)")
        self.ndim_ = ndim
        self.rows_ = np.empty((0, ndim), dtype=np.float64)
        self.n_learned_ = 0
        self.last_fit_ = -1  # n_learned_ at the last refit; -1 = never fitted

    def _started(self) -> bool:
        return hasattr(self, "ndim_")

    def _fitted(self) -> bool:
        return self._started() and self.last_fit_ >= 0

    def _context(self) -> FloatArray:
        h = self.window - 1
        out: FloatArray = self.rows_[-h:] if h > 0 else self.rows_[:0]
        return out

    def _rows_to_refit(self) -> int:
        """How many more rows to learn before the next refit is due."""
        if self.last_fit_ < 0:
            return max(self.min_train - self.n_learned_, 1)
        return max(self.last_fit_ + self.refit_every - self.n_learned_, 1)

    def _append(self, X: FloatArray) -> None:
        self.rows_ = np.concatenate([self.rows_, X])[-self.buffer:]
        self.n_learned_ += len(X)
        if self.n_learned_ >= self.min_train and (
            self.last_fit_ < 0 or self.n_learned_ - self.last_fit_ >= self.refit_every
        ):
            self._fit(self.rows_)
            self.last_fit_ = self.n_learned_

    def _checked(self, x: float | FloatArray) -> FloatArray | None:
        row = as_row(x, self.ndim_ if self._started() else None)
        return row if bool(np.all(np.isfinite(row))) else None

    # --- the Detector interface ---------------------------------------------------------------------

    def learn_one(self, t: float, x: float | FloatArray) -> None:
        row = self._checked(x)
        if row is None:
            return
        if not self._started():
            self._init_state(row.shape[0])
        self._append(row[None, :])

    def score_one(self, t: float, x: float | FloatArray) -> float:
        row = self._checked(x)
        if row is None or not self._fitted():
            return 0.0
        H = np.concatenate([self._context(), row[None, :]])
        return float(self._score_rows(H, len(H) - 1)[-1])

    def explain_one(self, t: float, x: float | FloatArray) -> FloatArray:
        row = self._checked(x)
        if row is None or not self._fitted():
            return np.zeros(self.ndim_ if self._started() else np.atleast_1d(np.asarray(x)).shape[0])
        H = np.concatenate([self._context(), row[None, :]])
        out: FloatArray = self._explain_rows(H, len(H) - 1)[-1]
        return out

    def score(self, frame: Frame) -> FloatArray:
        out = np.zeros(len(frame), dtype=np.float64)
        self._run(frame, self._score_rows, out)
        return out

    def learn(self, frame: Frame) -> None:
        self._run(frame, None, None)

    def explain(self, frame: Frame) -> FloatArray:
        """Prequential ``explain_one`` of every row ``(n, d)``; learns the frame like :meth:`score`."""
        out = np.zeros((len(frame), frame.ndim), dtype=np.float64)
        self._run(frame, self._explain_rows, out)
        return out

    def _run(self, frame: Frame, fn: Callable[[FloatArray, int], FloatArray] | None, out: FloatArray | None) -> None:
        """Apply ``fn`` to (into ``out``) and learn every finite row of ``frame``, chunked at the refits."""
        self._check_frame(frame)
        if self._started() and frame.ndim != self.ndim_:
            raise DataError(f"frame has {frame.ndim} columns, the detector learned {self.ndim_}",
                            where=frame.name or None)
        ok = np.flatnonzero(np.all(np.isfinite(frame.values), axis=1))
        if ok.size and not self._started():
            self._init_state(frame.ndim)
        start = 0
        while start < ok.size:
            stop = min(start + self._rows_to_refit(), ok.size)
            X = frame.values[ok[start:stop]]
            if fn is not None and out is not None and self._fitted():
                ctx = self._context()
                out[ok[start:stop]] = fn(np.concatenate([ctx, X]), len(ctx))
            self._append(X)
            start = stop
