"""Put a series on a regular grid, and mark outages as gaps.

:func:`regularise` is the one place where a series changes resolution (e.g. 1 s samples to 1 min or 5 min
buckets) or gets a regular grid at all. Gap handling, as documented behaviour:

- every bucket between the first and the last observation is present in the output;
- a bucket with no finite observation is NaN (a gap): forecasters fill or skip NaN and say so in their notes;
  nothing is invented here;
- ``how="mean"`` averages the finite observations of a bucket (gauges: CPU, latency, queue length);
  ``how="sum"`` adds them (counters per interval: requests per second into requests per 5 min); a partially
  observed bucket sums what is there; ``how="max"`` and ``how="last"`` are also available;
- buckets are ``[origin + k * step, origin + (k + 1) * step)`` labelled by their start; ``origin="epoch"``
  aligns them to whole steps since 1970-01-01 (5 min buckets start at :00, :05, ...), ``origin="start"`` to the
  first timestamp.

:func:`mask_outages` turns long runs of exact zeros in an otherwise positive series (a collector that was down
and reported 0) into NaN, so they count as gaps rather than as demand.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd

from opsmind.core import ConfigError, DataError, FloatArray, Frame

__all__ = ["mask_outages", "regularise"]

How = Literal["mean", "sum", "max", "last"]


def regularise(
    frame: Frame, step_s: float, how: How = "mean", *, origin: Literal["epoch", "start"] = "epoch"
) -> Frame:
    """The frame on a regular ``step_s`` grid (every column), NaN for buckets without data (see module doc)."""
    if not step_s > 0:
        raise ConfigError(f"step must be positive, got {step_s} s")
    if how not in ("mean", "sum", "max", "last"):
        raise ConfigError(f"how must be one of mean, sum, max, last; got {how!r}")
    if len(frame) == 0:
        raise DataError("no data rows", where=frame.name or None)
    step_ns = round(step_s * 1e9)
    ns = frame.timestamps.astype("datetime64[ns]").astype(np.int64)
    base = int(ns[0]) if origin == "start" else int(ns[0]) - int(ns[0]) % step_ns
    idx = (ns - base) // step_ns
    n_buckets = int(idx[-1]) + 1
    df = pd.DataFrame(frame.values, columns=list(range(frame.ndim)))
    df["bucket"] = idx
    grouped = df.groupby("bucket", sort=True)
    if how == "mean":
        agg = grouped.mean()
    elif how == "sum":
        agg = grouped.sum(min_count=1)
    elif how == "max":
        agg = grouped.max()
    else:
        agg = grouped.last()
    agg = agg.reindex(np.arange(n_buckets))
    values: FloatArray = agg.to_numpy(dtype=np.float64, na_value=np.nan)
    ts = (base + step_ns * np.arange(n_buckets, dtype=np.int64)).astype("datetime64[ns]")
    notes = list(frame.notes)
    empty = int(np.sum(np.all(np.isnan(values), axis=1)))
    if empty:
        notes.append(f"{empty} of {n_buckets} buckets of {step_s:g} s had no data: left as gaps (NaN)")
    return Frame(ts, values, frame.columns, frame.name, tuple(notes))


def mask_outages(y: FloatArray, min_run: int, max_share: float = 0.2) -> tuple[FloatArray, list[str]]:
    """NaN for runs of at least ``min_run`` exact zeros, when the series is otherwise positive.

    "Otherwise positive" means: outside those runs, at most 1 % of the finite values are zero or negative, and
    the runs cover at most ``max_share`` of the finite values (a series that is often or mostly zero, like an
    error counter or a disk that is idle most of the time, keeps its zeros). Returns the masked copy and notes.
    """
    out = np.asarray(y, dtype=np.float64).copy()
    if min_run < 1 or out.size == 0:
        return out, []
    zero = out == 0.0
    if not zero.any():
        return out, []
    # Runs of zeros: starts and ends.
    padded = np.concatenate(([False], zero, [False]))
    edges = np.flatnonzero(padded[1:] != padded[:-1])
    starts, ends = edges[0::2], edges[1::2]
    long_runs = [(int(a), int(b)) for a, b in zip(starts, ends, strict=True) if b - a >= min_run]
    if not long_runs:
        return out, []
    in_run = np.zeros(out.size, dtype=bool)
    for a, b in long_runs:
        in_run[a:b] = True
    rest = out[~in_run & np.isfinite(out)]
    if rest.size == 0 or np.mean(rest <= 0) > 0.01 or in_run.sum() > max_share * np.isfinite(out).sum():
        return out, []
    out[in_run] = np.nan
    n = int(in_run.sum())
    return out, [f"{len(long_runs)} run(s) of zeros ({n} steps) in an otherwise positive series: "
                 "treated as an outage (gap), not as demand"]
