"""The detector interface: causal scorers with a streaming and a batch path that agree.

A detector turns observations into anomaly *scores* (``>= 0``, higher = more anomalous). It never decides:
turning scores into alerts is the job of :class:`opsmind.detect.threshold.Thresholder`.

The prequential contract, shared by both paths: for each row ``i`` in time order, the score is computed from the
state learned on rows ``0 .. i-1`` and the row itself, and only then does the detector learn row ``i``::

    for t, x in rows:
        s = det.score_one(t, x)   # pure: does not change the detector
        det.learn_one(t, x)       # returns None: it is stateful, and says so

``score(frame)`` does exactly that over a whole frame with a vectorised implementation, returning the same
numbers and leaving the detector in the same state as the loop. A row with a NaN scores 0.0 and is not learned.
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np

from opsmind.core import ConfigError, DataError, FloatArray, Frame, Registry

__all__ = ["DETECTORS", "Detector", "as_row"]


def as_row(x: float | FloatArray | list[float], ndim: int | None = None) -> FloatArray:
    """One observation as a 1-D float64 array; raises ``DataError`` on text or a wrong width."""
    try:
        arr = np.atleast_1d(np.asarray(x, dtype=np.float64))
    except (TypeError, ValueError):
        raise DataError(f"observation {x!r} is not numeric") from None
    if arr.ndim != 1:
        raise DataError(f"observation must be a scalar or 1-D, got shape {arr.shape}")
    if ndim is not None and arr.shape[0] != ndim:
        raise DataError(f"observation has {arr.shape[0]} values, the detector learned {ndim}")
    return arr


class Detector(ABC):
    """Base class of every anomaly detector.

    Subclasses store their constructor arguments unchanged (scikit-learn style); learned state lives in
    attributes ending in ``_``. ``multivariate`` says whether the detector reads every column jointly
    (otherwise it expects one column).
    """

    multivariate: ClassVar[bool] = False

    @abstractmethod
    def learn_one(self, t: float, x: float | FloatArray) -> None:
        """Update the state with one observation at time ``t`` (seconds since the epoch)."""

    @abstractmethod
    def score_one(self, t: float, x: float | FloatArray) -> float:
        """Score one observation against the current state, without changing it."""

    def score(self, frame: Frame) -> FloatArray:
        """Prequential scores of every row (score, then learn), the same as the streaming loop."""
        self._check_frame(frame)
        ts = frame.seconds()
        out = np.empty(len(frame), dtype=np.float64)
        for i in range(len(frame)):
            row = frame.values[i]
            out[i] = self.score_one(ts[i], row)
            self.learn_one(ts[i], row)
        return out

    def learn(self, frame: Frame) -> None:
        """Learn every row of ``frame`` in order without scoring (e.g. a training period)."""
        self._check_frame(frame)
        ts = frame.seconds()
        for i in range(len(frame)):
            self.learn_one(ts[i], frame.values[i])

    def explain_one(self, t: float, x: float | FloatArray) -> FloatArray:
        """Per-column contribution to the score of ``x`` (non-negative, same order as the columns).

        The default gives the whole score to the only column; multivariate detectors override it.
        """
        return np.array([self.score_one(t, x)])

    def clone(self) -> Detector:
        """A new, unfitted detector with the same parameters."""
        params = {k: copy.deepcopy(v) for k, v in self._params().items()}
        return type(self)(**params)

    def _params(self) -> dict[str, Any]:
        import inspect

        sig = inspect.signature(type(self).__init__)
        return {p: getattr(self, p) for p in sig.parameters if p != "self" and hasattr(self, p)}

    def _check_frame(self, frame: Frame) -> None:
        if not self.multivariate and frame.ndim != 1:
            raise DataError(
                f"{type(self).__name__} scores one column; got {frame.ndim} ({', '.join(frame.columns)})",
                where=frame.name or None,
            )

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._params().items())
        return f"{type(self).__name__}({args})"


DETECTORS: Registry[Detector] = Registry("detector")


def check_positive(name: str, value: float, *, integer: bool = False) -> None:
    """Raise ``ConfigError`` unless ``value`` is a positive number (an int if ``integer``)."""
    if integer and (not isinstance(value, int | np.integer) or isinstance(value, bool)):
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    if not isinstance(value, int | float | np.number) or not value > 0:
        raise ConfigError(f"{name} must be positive, got {value!r}")
