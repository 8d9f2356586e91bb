"""Scorers of the SMD benchmark: point-wise best F1, point-adjusted F1 and interpretation HitRate@P%.

Every threshold rule is "a row is flagged when its score is >= the threshold"; the best F1 is the maximum over
every distinct score used as the threshold, computed in ``O(n log n)`` by one sort and cumulative counts.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from opsmind.core import FloatArray

__all__ = ["best_f1", "hitrate", "pa_f1", "segments"]

BoolArray = npt.NDArray[np.bool_]


def _best_f1_of_events(values: FloatArray, tp: FloatArray, fp: FloatArray, positives: float) -> float:
    """Max F1 over thresholds when each event (a value) adds ``tp`` and ``fp`` counts once flagged."""
    if positives <= 0:
        return math.nan
    order = np.argsort(-values, kind="stable")
    v = values[order]
    ctp, cfp = np.cumsum(tp[order]), np.cumsum(fp[order])
    last = np.flatnonzero(np.append(v[1:] != v[:-1], True))  # the last event of each group of ties
    ctp, cfp = ctp[last], cfp[last]
    f1 = 2.0 * ctp / (ctp + cfp + positives)
    return float(f1.max()) if f1.size else 0.0


def best_f1(scores: FloatArray, labels: BoolArray) -> float:
    """Point-wise F1 at the threshold that maximises it (``nan`` without anomalous rows).

    Examples
    --------
    >>> best_f1(np.array([0.9, 0.8, 0.1, 0.7]), np.array([True, False, False, True]))
    0.8
    """
    y = np.asarray(labels, dtype=bool)
    s = np.asarray(scores, dtype=np.float64)
    return _best_f1_of_events(s, y.astype(np.float64), (~y).astype(np.float64), float(y.sum()))


def segments(labels: BoolArray) -> list[tuple[int, int]]:
    """Runs of true labels as ``(start, stop)`` index pairs (``stop`` exclusive)."""
    y = np.concatenate([[False], np.asarray(labels, dtype=bool), [False]])
    edges = np.flatnonzero(y[1:] != y[:-1])
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def pa_f1(scores: FloatArray, labels: BoolArray) -> float:
    """F1 with point adjustment (Xu et al. 2018) at the threshold that maximises it.

    A true anomaly segment counts as wholly detected when any of its rows is flagged, so a segment is one
    event valued at its maximum score and worth its length in true positives; each normal row is an event worth
    one false positive. This inflates F1, mostly for long segments: compare with the random baseline.

    Examples
    --------
    >>> s = np.array([0.1, 0.9, 0.2, 0.3, 0.5, 0.4])
    >>> y = np.array([False, True, True, True, False, False])
    >>> pa_f1(s, y)
    1.0
    """
    y = np.asarray(labels, dtype=bool)
    s = np.asarray(scores, dtype=np.float64)
    segs = segments(y)
    seg_max = np.array([s[a:b].max() for a, b in segs], dtype=np.float64)
    seg_len = np.array([b - a for a, b in segs], dtype=np.float64)
    values = np.concatenate([s[~y], seg_max])
    tp = np.concatenate([np.zeros(int((~y).sum())), seg_len])
    fp = np.concatenate([np.ones(int((~y).sum())), np.zeros(len(segs))])
    return _best_f1_of_events(values, tp, fp, float(y.sum()))


def hitrate(
    ranking: FloatArray,
    truth: Sequence[tuple[int, int, Sequence[int]]],
    labels: BoolArray,
    percent: float,
) -> float:
    """Interpretation HitRate@P% (Su et al., OmniAnomaly, KDD 2019).

    ``ranking`` is ``(n, d)``: higher = the dimension contributed more at that row. ``truth`` holds
    ``(start, stop, dims)`` with 0-based rows (``stop`` exclusive) and 0-based dimensions. For every labelled
    anomalous row of a segment with ground-truth dimensions ``G``, the top ``floor(P% * |G|)`` dimensions by
    ranking are taken and ``|top ∩ G| / |G|`` is averaged over those rows. Ties rank the lower dimension first.

    Examples
    --------
    >>> r = np.array([[0.0, 3.0, 1.0, 2.0], [5.0, 0.0, 0.0, 1.0]])
    >>> truth = [(0, 2, [1, 3])]
    >>> hitrate(r, truth, np.array([True, True]), 100), hitrate(r, truth, np.array([True, True]), 150)
    (0.75, 1.0)
    """
    y = np.asarray(labels, dtype=bool)
    hits: list[float] = []
    for start, stop, dims in truth:
        g = np.asarray(sorted(set(dims)), dtype=np.int64)
        k = min(math.floor(percent / 100.0 * len(g)), ranking.shape[1])
        if len(g) == 0 or k == 0:
            continue
        rows = np.arange(start, min(stop, len(y)))
        rows = rows[y[rows]]
        if rows.size == 0:
            continue
        top = np.argsort(-ranking[rows], axis=1, kind="stable")[:, :k]
        hits.extend((np.isin(top, g).sum(axis=1) / len(g)).tolist())
    return float(np.mean(hits)) if hits else math.nan
