"""Robust, scale-aware deviation scores of metrics between a normal window and an anomalous window.

For each metric, the normal window gives a median and a robust spread (IQR / 1.349, which equals the standard
deviation for Gaussian data), floored at a fraction of the median's magnitude so that a near-constant metric
does not turn a tiny wobble into a huge z (the weakness of plain median/IQR scaling, as in BARO, on sparse
metrics). The score of the metric is the ``sustain``-th largest ``|x - median| / spread`` over the anomalous
window: a deviation has to hold for that many samples, which keeps one-sample spikes of bursty metrics from
ranking first.

Metric names are sorted into kinds (:func:`metric_kind`) because the kinds behave differently on a call graph:
latency and errors travel from a callee up to its callers, traffic travels down from a caller to its callees,
node-level metrics are shared by every pod on a node, and a service's client-side latency measures its callees.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
from scipy.special import ndtri

from opsmind.core import FloatArray

__all__ = ["KIND_CAUSE", "KIND_LATENCY", "KIND_TRAFFIC", "Deviation", "deviations", "metric_kind", "robust_spread"]

KIND_LATENCY = frozenset({"latency", "call_latency", "network", "errors", "success", "trace_latency"})
KIND_TRAFFIC = frozenset({"traffic"})
KIND_CAUSE = frozenset({"cpu", "memory", "network", "logs"})

_RULES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("node", re.compile(r"^node|[_:.]node[_]")),
    ("client_latency", re.compile(r"client.*(latency|duration|time)|(latency|duration).*client")),
    ("latency", re.compile(r"latency|duration|response.?time|\brt\b|_seconds?($|_)|p9\d|p50")),
    ("success", re.compile(r"success|availability|apdex")),
    ("errors", re.compile(r"error|fail|5xx|exception|fault")),
    ("cpu", re.compile(r"cpu")),
    ("memory", re.compile(r"mem|heap|rss|gc")),
    ("traffic", re.compile(r"network|bytes|syscall|workload|ops|rps|qps|request|rate|throughput|io")),
)


def metric_kind(name: str) -> str:
    """The kind of a metric, from its name (case-insensitive).

    Kinds: ``node`` (a node-level metric shared by the pods of a node), ``client_latency`` (a service's view of
    its callees), ``latency``, ``success``, ``errors``, ``cpu``, ``memory``, ``traffic`` and ``other``.

    >>> [metric_kind(n) for n in ("CpuUsageRate(%)", "PodServerLatencyP90(s)", "PodClientLatencyP90(s)",
    ...                            "NodeCpuUsageRate(%)", "PodWorkload(Ops)", "error_ratio", "memory_bytes")]
    ['cpu', 'latency', 'client_latency', 'node', 'traffic', 'errors', 'memory']
    """
    low = name.lower()
    for kind, pattern in _RULES:
        if pattern.search(low):
            return kind
    return "other"


@dataclass(frozen=True)
class Deviation:
    """Per-column results of :func:`deviations` (arrays of one value per column)."""

    score: FloatArray  # sustained robust z, 0 where a column could not be scored
    median: FloatArray  # normal median
    spread: FloatArray  # the robust spread used
    observed: FloatArray  # the most deviant anomalous value
    at_index: np.ndarray  # row (within the anomalous window) of the sample that set the score, -1 if none
    n_normal: np.ndarray  # finite normal samples per column


def robust_spread(x: FloatArray, tail: float = 0.1) -> float:
    """The larger of two Gaussian-consistent spreads of ``x``: IQR / 1.349 and the ``tail``..``1 - tail`` range.

    For Gaussian data both estimate the standard deviation. For a zero-inflated or bursty metric (requests that
    come now and then, a node's CPU sampled mostly at 0) the IQR is 0 while the wider range sees the bursts, so
    a burst of the usual size does not score as a huge deviation. ``tail = 0`` uses the IQR alone.

    >>> bursty = np.array([0.0] * 16 + [8.0, 12.0, 16.0, 10.0])
    >>> round(robust_spread(bursty, 0.0), 3), round(robust_spread(bursty), 3)
    (0.0, 3.98)
    """
    q75, q25 = np.percentile(x, [75.0, 25.0])
    spread = float(q75 - q25) / 1.349
    if tail > 0:
        hi, lo = np.percentile(x, [100.0 * (1.0 - tail), 100.0 * tail])
        spread = max(spread, float(hi - lo) / (2.0 * float(ndtri(1.0 - tail))))
    return spread


def deviations(normal: FloatArray, anomalous: FloatArray, *, sustain: int = 2, rel_floor: float = 0.05,
               max_z: float = 1e4, min_normal: int = 3, floor: FloatArray | None = None,
               tail: float = 0.1) -> Deviation:
    """Robust deviation of each column of ``anomalous`` (rows = samples) from the same column of ``normal``.

    NaN values are ignored. A column with fewer than ``min_normal`` finite normal samples, or no finite
    anomalous sample, scores 0. ``floor`` (one value per column) is an extra absolute floor of the spread, for a
    derived series whose median says nothing of its magnitude (a difference of two latencies is near 0).


    >>> rng = np.random.default_rng(0)
    >>> normal = rng.normal(10.0, 1.0, size=(60, 2))
    >>> anomalous = np.column_stack([rng.normal(10.0, 1.0, 5), [10.0, 30.0, 31.0, 29.0, 10.0]])
    >>> d = deviations(normal, anomalous)
    >>> bool(d.score[0] < 4.0), bool(d.score[1] > 15.0), float(d.observed[1])
    (True, True, 31.0)
    >>> float(deviations(normal, np.array([[10.0, 50.0]])).score[1]) > 30  # one sample: sustain becomes 1
    True
    """
    normal = np.atleast_2d(np.asarray(normal, dtype=np.float64))
    anomalous = np.atleast_2d(np.asarray(anomalous, dtype=np.float64))
    d = normal.shape[1]
    score = np.zeros(d)
    med = np.full(d, np.nan)
    spread = np.full(d, np.nan)
    observed = np.full(d, np.nan)
    at_index = np.full(d, -1, dtype=np.int64)
    n_normal = np.sum(np.isfinite(normal), axis=0).astype(np.int64)
    for j in range(d):
        x = normal[:, j]
        x = x[np.isfinite(x)]
        if x.size < min_normal:
            continue
        m = float(np.median(x))
        s = max(robust_spread(x, tail), rel_floor * abs(m), 1e-12,
                float(floor[j]) if floor is not None and np.isfinite(floor[j]) else 0.0)
        med[j], spread[j] = m, s
        col = anomalous[:, j]
        ok = np.flatnonzero(np.isfinite(col))
        if ok.size == 0:
            continue
        z = np.minimum(np.abs(col[ok] - m) / s, max_z)
        order = np.argsort(-z, kind="stable")
        k = min(sustain, ok.size) - 1
        pick = int(order[k])
        score[j] = float(z[pick])
        # report the sample that made the score and, as the observed value, the most extreme of the held ones
        best = int(order[0])
        at_index[j] = int(ok[pick])
        observed[j] = float(col[ok[best]])
    return Deviation(score, med, spread, observed, at_index, n_normal)
