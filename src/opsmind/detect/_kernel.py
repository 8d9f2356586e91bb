"""Shared machinery of the compiled univariate detectors: a typed ``jit``, sorted rolling windows, a base class.

Each detector keeps its learned state in numpy arrays and has one compiled kernel that walks a block of rows,
scoring each row against the state and then (when ``learn``) updating the state in place. The streaming path
calls the kernel on one row, the batch path on a whole frame, so both compute the same numbers with the same
code and leave the same state.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable
from typing import Any, TypeVar, cast

import numba
import numpy as np
import numpy.typing as npt

from opsmind.core import DataError, FloatArray, Frame
from opsmind.detect.base import Detector, as_row

__all__ = ["IntArray", "KernelDetector", "jit", "robust_scale", "window_median", "window_push", "window_quantile"]

F = TypeVar("F", bound=Callable[..., Any])
IntArray = npt.NDArray[np.int64]

#: Smallest scale a detector divides by, relative to the size of the level (|median| or |mean|), and absolute.
REL_FLOOR = 1e-9
ABS_FLOOR = 1e-12


def jit(fn: F) -> F:
    """``numba.njit(cache=True)`` keeping the function's type for mypy."""
    return cast(F, numba.njit(cache=True)(fn))


@jit
def scale_floor(level: float) -> float:
    """The smallest scale used when dividing: ``1e-9 * |level|``, at least ``1e-12``."""
    return max(REL_FLOOR * abs(level), ABS_FLOOR)


@jit
def _lower_bound(srt: FloatArray, n: int, x: float) -> int:
    lo, hi = 0, n
    while lo < hi:
        mid = (lo + hi) // 2
        if srt[mid] < x:
            lo = mid + 1
        else:
            hi = mid
    return lo


@jit
def window_push(ring: FloatArray, srt: FloatArray, pos: IntArray, x: float) -> None:
    """Add ``x`` to a rolling window: ``ring`` in arrival order, ``srt`` sorted; ``pos = [count, head, ...]``."""
    w = ring.shape[0]
    n = pos[0]
    if n < w:
        ring[n] = x
        i = n
        while i > 0 and srt[i - 1] > x:
            srt[i] = srt[i - 1]
            i -= 1
        srt[i] = x
        pos[0] = n + 1
        return
    h = pos[1]
    old = ring[h]
    ring[h] = x
    pos[1] = h + 1 if h + 1 < w else 0
    k = _lower_bound(srt, w, old)  # srt[k] == old: replace it and slide x into place
    if x >= old:
        while k + 1 < w and srt[k + 1] < x:
            srt[k] = srt[k + 1]
            k += 1
    else:
        while k > 0 and srt[k - 1] > x:
            srt[k] = srt[k - 1]
            k -= 1
    srt[k] = x


@jit
def window_quantile(srt: FloatArray, n: int, q: float) -> float:
    """Quantile ``q`` of the first ``n`` sorted values (linear interpolation between order statistics)."""
    p = (n - 1) * q
    lo = int(p)  # p >= 0: truncation is the floor
    hi = lo + 1 if lo + 1 < n else lo
    return float(srt[lo] + (srt[hi] - srt[lo]) * (p - lo))


@jit
def window_median(srt: FloatArray, n: int) -> float:
    """Median of the first ``n`` sorted values."""
    h = n // 2
    if n % 2 == 1:
        return float(srt[h])
    return float(0.5 * (srt[h - 1] + srt[h]))


@jit
def _mad(srt: FloatArray, n: int, m: float) -> float:
    # Median of |srt - m|: merge the two sorted runs of deviations on either side of m, walking n//2 + 1 steps.
    j = _lower_bound(srt, n, m)
    i = j - 1
    prev = 0.0
    cur = 0.0
    for _ in range(n // 2 + 1):
        if i >= 0 and (j >= n or m - srt[i] <= srt[j] - m):
            d = m - srt[i]
            i -= 1
        else:
            d = srt[j] - m
            j += 1
        prev = cur
        cur = d
    return cur if n % 2 == 1 else 0.5 * (prev + cur)


@jit
def robust_scale(srt: FloatArray, n: int, m: float) -> float:
    """Normal-consistent scale of the first ``n`` sorted values around their median ``m``.

    ``1.4826 * MAD``; when more than half the values equal the median (MAD = 0) it falls back to
    ``1.2533 * mean |x - m|``, and it is never below :func:`scale_floor`.
    """
    s = 1.4826 * _mad(srt, n, m)
    floor = scale_floor(m)
    if s > floor:
        return s
    acc = 0.0
    for k in range(n):
        acc += abs(srt[k] - m)
    return max(1.2533 * acc / n, floor)


class KernelDetector(Detector):
    """A univariate detector whose state is numpy arrays updated in place by one compiled kernel.

    Subclasses implement ``_validate`` (raise ``ConfigError`` naming the field), ``_init_state`` (create the
    ``*_`` attributes) and ``_run(ts, xs, out, learn)`` (score each row into ``out``; learn it when ``learn``).
    """

    @abstractmethod
    def _validate(self) -> None: ...

    @abstractmethod
    def _init_state(self) -> None: ...

    @abstractmethod
    def _run(self, ts: FloatArray, xs: FloatArray, out: FloatArray, learn: bool) -> None: ...

    def _ensure_state(self) -> None:
        if not any(k.endswith("_") and not k.startswith("_") for k in vars(self)):
            self._validate()
            self._init_state()

    def _one(self, t: float, x: float | FloatArray, learn: bool) -> float:
        xs = as_row(x, 1)
        try:
            ts = np.array([float(t)])
        except (TypeError, ValueError):
            raise DataError(f"time {t!r} is not a number of seconds") from None
        self._ensure_state()
        out = np.zeros(1)
        self._run(ts, xs, out, learn)
        return float(out[0])

    def score_one(self, t: float, x: float | FloatArray) -> float:
        return self._one(t, x, learn=False)

    def learn_one(self, t: float, x: float | FloatArray) -> None:
        self._one(t, x, learn=True)

    def _block(self, frame: Frame) -> FloatArray:
        self._check_frame(frame)
        self._ensure_state()
        out = np.zeros(len(frame))
        self._run(frame.seconds(), np.ascontiguousarray(frame.values[:, 0]), out, True)
        return out

    def score(self, frame: Frame) -> FloatArray:
        return self._block(frame)

    def learn(self, frame: Frame) -> None:
        self._block(frame)
