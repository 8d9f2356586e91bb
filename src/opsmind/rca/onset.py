"""Fault onset from frontend SLIs: the last normal sample before a sustained change near the time asked about.

The SLIs (success rate, latency quantiles) are scaled robustly on a normal window that ends ``search_s`` before
``at``: median and IQR / 1.349, floored at a fraction of the median (see :mod:`opsmind.rca.scoring`). Each sample
in ``[at - search_s, at + search_s]`` gets the largest robust z over the SLI columns. A change point is a sample
that starts a run of at least ``sustain`` samples above ``onset_z``; of these, the one nearest to ``at`` wins
(``at`` is when someone noticed, which may be off by a minute or two either way, and the previous incident's
tail may still be in the window). The onset is the last sample before the run: the change happened after it,
so it belongs to the normal window and the run's first sample to the anomalous one. With samples every minute
the onset is within one sample of the true start whenever the change is visible in its first sample.

When no SLI changes near ``at`` (a fault that does not reach the frontend, or no SLI data), :func:`event_onset`
can look for the change point of the log stream instead (a code-level fault changes which statements run long
before it moves a latency quantile; setting ``log_onset``); failing that, the onset is ``at`` itself and
``found`` is false.
"""

from __future__ import annotations

import numpy as np

from opsmind.core import Frame
from opsmind.rca.model import Onset
from opsmind.rca.scoring import robust_spread
from opsmind.rca.settings import RcaSettings

__all__ = ["detect_onset", "disturbed_times", "event_onset", "sli_z"]


def sli_z(slis: Frame, normal: np.ndarray, rel_floor: float, max_z: float,
          tail: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """Largest robust z over the SLI columns per row, and the column index that gave it (-1 on an all-NaN row)."""
    x = slis.values
    ref = x[normal]
    with np.errstate(all="ignore"):
        med = np.nanmedian(ref, axis=0)
    spread = np.zeros(x.shape[1])
    for j in range(x.shape[1]):
        col = ref[:, j][np.isfinite(ref[:, j])]
        spread[j] = robust_spread(col, tail) if col.size else np.nan
    spread = np.maximum(spread, np.maximum(rel_floor * np.abs(med), 1e-12))
    z = np.minimum(np.abs(x - med) / spread, max_z)
    z[:, ~np.isfinite(med)] = np.nan
    finite = np.isfinite(z)
    zz = np.where(finite, z, -1.0)
    col = np.argmax(zz, axis=1)
    best = zz[np.arange(len(x)), col]
    col[best < 0] = -1
    return np.maximum(best, 0.0), col


def detect_onset(slis: Frame | None, at_s: float, settings: RcaSettings | None = None) -> Onset:
    """The onset near ``at_s`` (Unix seconds) from the SLI frame; see the module docstring.

    Examples
    --------
    >>> import numpy as np
    >>> t = 1_700_000_000 + 60 * np.arange(90)
    >>> lat = 0.2 + 0.01 * np.random.default_rng(1).standard_normal(90)
    >>> lat[70:76] += 1.0  # the frontend slows down from sample 70
    >>> frame = Frame.from_arrays(t.astype("datetime64[s]"), lat, ["latency_p90_s"])
    >>> on = detect_onset(frame, at_s=float(t[71]))  # noticed a minute late
    >>> on.found, on.time_s == float(t[69]), on.signal
    (True, True, 'latency_p90_s')
    >>> detect_onset(frame, at_s=float(t[30])).found  # nothing changed around then
    False
    """
    s = settings or RcaSettings()
    if slis is None or len(slis) == 0 or slis.ndim == 0:
        return Onset(at_s, False, detail="no SLI data: the onset is the time given")
    t = slis.seconds()
    lo, hi = at_s - s.search_s, at_s + s.search_s
    normal = (t < lo) & (t >= lo - s.baseline_s)
    if int(normal.sum()) < s.min_normal:
        normal = t < lo
    if int(normal.sum()) < s.min_normal:
        return Onset(at_s, False, detail=f"fewer than {s.min_normal} SLI samples before the search window")
    z, col = sli_z(slis, normal, s.rel_floor, s.max_z, s.tail)
    over = z > s.onset_z
    starts: list[int] = []
    for i in (int(k) for k in np.flatnonzero((t >= lo) & (t <= hi))):
        if not over[i] or (i > 0 and over[i - 1] and t[i - 1] >= lo):
            continue  # not the start of a run inside the window
        run_end = min(i + s.sustain, len(t))
        if run_end - i >= min(s.sustain, len(t) - i) and bool(np.all(over[i:run_end])):
            starts.append(i)
    if not starts:
        return Onset(at_s, False, detail=f"no SLI above robust z {s.onset_z:g} for {s.sustain} samples within "
                     f"{s.search_s:g} s of the time given: the onset is that time")
    first = min(starts, key=lambda i: (abs(float(t[i]) - at_s), float(t[i])))
    step = float(np.median(np.diff(t))) if len(t) > 1 else 0.0
    onset_s = float(t[first - 1]) if first > 0 else float(t[first]) - step
    name = slis.columns[int(col[first])] if col[first] >= 0 else ""
    return Onset(onset_s, True, signal=name, score=float(z[first]),
                 detail=f"first changed sample {np.datetime_as_string(slis.timestamps[first], unit='s')}")


def disturbed_times(slis: Frame | None, at_s: float, settings: RcaSettings | None = None) -> np.ndarray:
    """Times (Unix seconds, sorted) at which an SLI was above ``onset_z``, scaled as :func:`detect_onset` does.

    These samples are taken out of the normal window of the metrics (when enough remain): back-to-back incidents
    leave their tails in the hour before the onset.
    """
    s = settings or RcaSettings()
    if slis is None or len(slis) == 0 or slis.ndim == 0:
        return np.array([], dtype=np.float64)
    t = slis.seconds()
    lo = at_s - s.search_s
    normal = (t < lo) & (t >= lo - s.baseline_s)
    if int(normal.sum()) < s.min_normal:
        normal = t < lo
    if int(normal.sum()) < s.min_normal:
        return np.array([], dtype=np.float64)
    z, _ = sli_z(slis, normal, s.rel_floor, s.max_z, s.tail)
    out: np.ndarray = t[z > s.onset_z]
    return out


def event_onset(seconds: np.ndarray, keys: np.ndarray, at_s: float, settings: RcaSettings | None = None,
                *, signal: str = "log templates") -> Onset:
    """The change point of an event stream (log lines keyed by service and template) near ``at_s``.

    Every ``event_step_s`` within ``search_s`` of ``at_s``, the events of the ``event_width_s`` before and after are
    counted per key and compared with an exact binomial test at the two windows' overall ratio (as
    :func:`opsmind.rca.logs.score_logs` does); the divergence of a split is the sum over keys of ``min(z^2, 25)``.
    The split with the largest divergence is the onset if that divergence is at least ``event_ratio`` times the
    median over the splits (a change that stands out from the stream's ordinary churn) and times the number of
    keys with 10 events or more around it (what chance alone gives: about 1 per key); else ``found`` is false.

    >>> rng = np.random.default_rng(0)
    >>> t = np.sort(rng.uniform(0, 600, 3000))
    >>> keys = np.where(t < 300, rng.choice(["a", "b"], t.size), rng.choice(["a", "c"], t.size))
    >>> on = event_onset(t, keys, at_s=340.0)
    >>> on.found, abs(on.time_s - 300) <= 10
    (True, True)
    """
    from opsmind.rca.logs import binomial_z

    s = settings or RcaSettings()
    width, step = s.event_width_s, s.event_step_s
    lo, hi = at_s - s.search_s - width, at_s + s.search_s + width
    inside = (seconds > lo) & (seconds <= hi)
    if int(inside.sum()) == 0:
        return Onset(at_s, False, detail=f"no {signal} within {s.search_s + width:g} s of the time given")
    uniq, inv = np.unique(np.asarray(keys)[inside], return_inverse=True)
    n_bins = int(np.ceil((hi - lo) / step))
    bins = np.minimum(((seconds[inside] - lo) // step).astype(np.int64), n_bins - 1)
    counts = np.zeros((n_bins, uniq.size))
    np.add.at(counts, (bins, inv), 1.0)
    cum = np.vstack([np.zeros(uniq.size), np.cumsum(counts, axis=0)])
    k = max(1, round(width / step))
    splits, div, busy = [], [], []
    for i in range(k, n_bins - k + 1):
        tau = lo + i * step
        if abs(tau - at_s) > s.search_s:
            continue
        before, after = cum[i] - cum[i - k], cum[i + k] - cum[i]
        a, b = float(after.sum()), float(before.sum())
        if a == 0 or b == 0:
            continue
        z = binomial_z(after, after + before, a / (a + b))
        splits.append(tau)
        div.append(float(np.sum(np.minimum(z * z, 25.0))))
        busy.append(int(np.sum(after + before >= 10)))
    if not splits:
        return Onset(at_s, False, detail=f"too few {signal} on both sides of the time given")
    d = np.array(div)
    j = int(np.argmax(d))
    # the typical split, and at least what chance gives (about 1 per key with enough events to test)
    ratio = float(d[j] / max(float(np.median(d)), float(busy[j]), 1e-12))
    if ratio < s.event_ratio:
        return Onset(at_s, False, detail=f"no change of the {signal} stands out (peak {ratio:.2g}x the median)")
    return Onset(float(splits[j]), True, signal=signal, score=ratio,
                 detail=f"divergence {d[j]:.3g}, {ratio:.2g}x the median split; the SLIs showed no change")
