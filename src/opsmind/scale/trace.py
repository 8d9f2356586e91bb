"""Turn a metric series into a load trace for the replay: a regular grid, outages masked, scaled to a size.

:func:`prepare_trace` is what ``opsmind scale simulate`` and ``opsmind bench autoscale`` do with every trace, the
same for every file (no per-file settings):

* one value column (the first, or the one named);
* a regular grid of ``step_s``: finer series are averaged per step (rates stay rates); coarser ones are held over
  their interval (a 5-minute value is the rate for each of its five minutes);
* negative values cannot be a load: they become gaps, with a note; zeros are kept;
* outages: runs of at least ``outage_s`` of exact zeros in an otherwise positive series become gaps
  (:func:`opsmind.forecast.resample.mask_outages`);
* size: the load is multiplied so that its 99th percentile needs ``size_replicas`` replicas at the SLO
  (:class:`~opsmind.scale.base.CapacityTable`), which makes traces of any unit comparable;
* a trace with no positive value, or too short to score after the warm-up, is reported as such (``usable`` is
  false and ``notes`` say why), never an exception.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from opsmind.core import ConfigError, DataError, FloatArray, Frame
from opsmind.forecast.base import infer_step
from opsmind.forecast.resample import mask_outages, regularise
from opsmind.scale.base import CapacityTable, ServiceModel

__all__ = ["PreparedTrace", "prepare_trace"]


@dataclass
class PreparedTrace:
    """A replay-ready trace: epoch seconds, load in req/s (NaN = gap), the scale factor applied, notes."""

    name: str
    t: FloatArray
    load: FloatArray
    step_s: float
    scale: float
    usable: bool
    notes: list[str] = field(default_factory=list)

    @property
    def days(self) -> float:
        return float(self.t.shape[0] * self.step_s / 86400.0)


def prepare_trace(
    frame: Frame,
    model: ServiceModel,
    *,
    step_s: float = 60.0,
    column: str | None = None,
    size_replicas: int | None = 25,
    outage_s: float = 3600.0,
    min_steps: int = 2,
) -> PreparedTrace:
    """See the module docstring. ``size_replicas=None`` keeps the values as they are (already req/s)."""
    name = frame.name or "trace"
    if not step_s > 0:
        raise ConfigError(f"trace: the step must be > 0 s, got {step_s}")
    if column is not None:
        if column not in frame.columns:
            raise DataError(f"no column {column!r}; columns: {', '.join(frame.columns)}", where=name)
        frame = frame.select([column])
    elif frame.ndim > 1:
        frame = frame.select([frame.columns[0]])
    notes = list(dict.fromkeys(frame.notes))
    if len(frame) < 2:
        return PreparedTrace(name, frame.seconds(), frame.values[:, 0].copy(), step_s, 1.0, False,
                             [*notes, f"only {len(frame)} observation(s): a trace needs at least two"])
    native = infer_step(frame.timestamps)
    if native >= 2 * step_s:
        reg = regularise(frame, native, "mean", origin="start")
        k = max(1, round(native / step_s))
        y = np.repeat(reg.values[:, 0], k)
        t = reg.seconds()[0] + step_s * np.arange(y.shape[0])
        notes.append(f"each {native:g} s value held over its {k} steps of {step_s:g} s")
    else:
        reg = regularise(frame, step_s, "mean", origin="epoch")
        y, t = reg.values[:, 0].copy(), reg.seconds()
        if native < step_s:
            notes.append(f"{native:g} s samples averaged into {step_s:g} s steps")
    gaps = int(np.isnan(y).sum())
    if gaps:
        notes.append(f"{gaps} step(s) without data: gaps (not scored)")
    neg = np.isfinite(y) & (y < 0)
    if neg.any():
        y[neg] = np.nan
        notes.append(f"{int(neg.sum())} negative value(s) cannot be a load: treated as gaps")
    y, outage_notes = mask_outages(y, max(1, round(outage_s / step_s)))
    notes += outage_notes
    finite = np.isfinite(y)
    if int(finite.sum()) < min_steps:
        return PreparedTrace(name, t, y, step_s, 1.0, False,
                             [*notes, f"only {int(finite.sum())} observed step(s); need {min_steps} to replay"])
    p99 = float(np.quantile(y[finite], 0.99))
    scale = 1.0
    if size_replicas is not None:
        if not p99 > 0:
            return PreparedTrace(name, t, y, step_s, 1.0, False,
                                 [*notes, "the load is zero almost everywhere (99th percentile 0): nothing to scale"])
        table = CapacityTable(model, max(size_replicas, 1))
        scale = table.max_rate(size_replicas) / p99
        y = y * scale
        notes.append(f"scaled x{scale:.4g} so that the 99th percentile ({p99 * scale:.4g} req/s) needs "
                     f"{size_replicas} replicas")
    if not math.isfinite(scale):
        return PreparedTrace(name, t, y, step_s, 1.0, False, [*notes, "the load cannot be scaled"])
    return PreparedTrace(name, t, y, step_s, scale, True, notes)
