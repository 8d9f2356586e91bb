"""Detection over a whole frame: one default detector per column, one thresholder, attribution by column.

Each value column gets its own fresh detector (the default is ``"opsmind"``, whose score is an anomaly
probability). A row's probability is the largest of its columns'; the thresholder turns that into alerts; the
columns whose probability is highest on an alert row are the metrics that drove it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from opsmind.core import ConfigError, FloatArray, Frame
from opsmind.detect.base import DETECTORS
from opsmind.detect.threshold import Thresholder

__all__ = ["Detection", "detect_frame"]


@dataclass(frozen=True)
class Detection:
    """Per-row results of :func:`detect_frame`."""

    frame: Frame
    column_probability: FloatArray  # (rows, columns)
    probability: FloatArray
    is_anomaly: npt.NDArray[np.bool_]
    severity: list[str | None]
    top_dims: list[list[str]] = field(default_factory=list)

    def anomalies(self) -> list[int]:
        return [int(i) for i in np.flatnonzero(self.is_anomaly)]


def detect_frame(
    frame: Frame,
    *,
    detector: str | Mapping[str, Any] = "opsmind",
    thresholder: Thresholder | None = None,
    top_k: int = 3,
    min_share: float = 0.5,
) -> Detection:
    """Score every column of ``frame`` and decide alerts on the per-row maximum probability.

    ``top_dims`` lists, per row, up to ``top_k`` columns whose probability is at least ``min_share`` of the
    row's maximum, most anomalous first (empty when the row's probability is 0).

    Examples
    --------
    >>> import numpy as np
    >>> ts = (np.arange(800) * 60).astype("datetime64[s]")
    >>> x = np.c_[np.sin(np.arange(800) / 8.0), np.cos(np.arange(800) / 8.0)]
    >>> x[700, 1] = 9.0
    >>> d = detect_frame(Frame.from_arrays(ts, x, ["cpu", "latency"]), thresholder=Thresholder(refractory_s=600.0))
    >>> 700 in d.anomalies(), d.top_dims[700], round(float(d.probability[700]), 2)
    (True, ['latency'], 1.0)
    """
    probe = DETECTORS.build(detector if isinstance(detector, str) else dict(detector))
    if probe.multivariate:
        raise ConfigError(f"detector {detector!r} is multivariate; detect_frame runs one univariate detector a column")
    th = thresholder or Thresholder()
    probs = np.zeros((len(frame), frame.ndim))
    for j, col in enumerate(frame.columns):
        det = probe.clone()
        probs[:, j] = det.score(frame.select([col]))
    row_p = probs.max(axis=1) if frame.ndim else np.zeros(len(frame))
    alerts, severity = th.process(row_p, frame.seconds())
    order = np.argsort(-probs, axis=1, kind="stable")
    top: list[list[str]] = []
    for i in range(len(frame)):
        if row_p[i] <= 0:
            top.append([])
            continue
        top.append([frame.columns[j] for j in order[i, :top_k] if probs[i, j] >= min_share * row_p[i]])
    return Detection(frame, probs, row_p, alerts, severity, top)
