"""Prometheus counters: which series are counters (by the naming conventions) and their per-second rate."""

from __future__ import annotations

import numpy as np

from opsmind.core.series import FloatArray

__all__ = ["COUNTER_SUFFIXES", "counter_rate", "is_counter", "reset_adjusted"]

COUNTER_SUFFIXES = ("_total", "_count", "_sum", "_bucket")


def is_counter(metric: str) -> bool:
    """Whether ``metric`` is a counter by the Prometheus naming conventions (``_total``; a histogram's or
    summary's ``_count``, ``_sum`` and ``_bucket``)."""
    return metric.endswith(COUNTER_SUFFIXES)


def reset_adjusted(values: FloatArray) -> FloatArray:
    """The running total with counter resets undone: after a drop, the value it had before is added (PromQL's
    rule: a counter that falls was restarted from zero).

    Examples
    --------
    >>> reset_adjusted(np.array([100.0, 150.0, 20.0, 40.0])).tolist()
    [100.0, 150.0, 170.0, 190.0]
    """
    drops = np.concatenate([[0.0], np.where(np.diff(values) < 0, values[:-1], 0.0)])
    return np.asarray(values + np.cumsum(drops), dtype=np.float64)


def counter_rate(ts: FloatArray, values: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Per-second rate between consecutive finite samples of a counter, resets corrected (PromQL's ``irate`` at
    each sample); the first sample has no rate.

    Examples
    --------
    >>> t, r = counter_rate(np.array([0.0, 10.0, 20.0, 30.0]), np.array([100.0, 150.0, 20.0, 40.0]))
    >>> t.tolist(), r.tolist()
    ([10.0, 20.0, 30.0], [5.0, 2.0, 2.0])
    """
    ok = np.isfinite(values) & np.isfinite(ts)
    t, v = np.asarray(ts, dtype=np.float64)[ok], np.asarray(values, dtype=np.float64)[ok]
    if t.size < 2:
        return np.zeros(0), np.zeros(0)
    dt = np.diff(t)
    inc = np.diff(reset_adjusted(v))
    keep = dt > 0
    return t[1:][keep], inc[keep] / dt[keep]
