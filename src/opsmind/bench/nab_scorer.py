"""The NAB scorer (Lavin & Ahmad 2015, arXiv:1510.03336; NAB v1.x), written for opsmind.

The rules, as the paper and NAB's documentation define them:

- Each labelled anomaly has a *window* of rows. The first 15 % of a file (at most 750 rows) is a
  probationary period: its rows are not scored.
- A detection is a row whose anomaly score is ``>= threshold``.
- Only the earliest detection inside a window counts, as a true positive worth
  ``sigma(p) * tp_weight / sigma(-1)``, where ``sigma(p) = 2 / (1 + exp(5 p)) - 1`` is the scaled sigmoid and
  ``p = -(right - i + 1) / width`` is the row's relative position in the window (``-1`` at the left edge).
- A detection outside every window is a false positive worth ``sigma(p) * fp_weight``, with
  ``p = (i - right_prev) / (width_prev - 1)`` measured from the end of the preceding window (``sigma = -1`` when
  there is none or ``p >= 3``): detections just after a window cost little.
- A window with no detection costs ``-fn_weight``.
- One threshold per profile is chosen to maximise the score summed over the whole corpus, and the sum is
  normalised so the null detector (no detections) scores 0 and a perfect detector 100:
  ``100 * (raw - null) / (perfect - null)`` with ``perfect = tp_weight * windows`` and
  ``null = -fn_weight * windows``.

Everything is vectorised: a corpus of 365,558 rows is swept over every threshold in well under a second.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd

from opsmind.core import DataError, FloatArray

__all__ = [
    "PROFILES",
    "CorpusSweep",
    "FileSweep",
    "Profile",
    "load_profiles",
    "load_windows",
    "scaled_sigmoid",
    "sweep_file",
]

PROBATION_PCT = 0.15
PROBATION_MAX_ROWS = 5000 * PROBATION_PCT  # 750 rows

IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Profile:
    """A NAB cost matrix."""

    name: str
    tp_weight: float
    fp_weight: float
    fn_weight: float


PROFILES: dict[str, Profile] = {
    "standard": Profile("standard", 1.0, 0.11, 1.0),
    "reward_low_FP_rate": Profile("reward_low_FP_rate", 1.0, 0.22, 1.0),
    "reward_low_FN_rate": Profile("reward_low_FN_rate", 1.0, 0.11, 2.0),
}


def load_profiles(path: Path) -> dict[str, Profile]:
    """Read NAB's ``config/profiles.json``."""
    raw = json.loads(path.read_text())
    out = {}
    for name, body in raw.items():
        cm = body["CostMatrix"]
        out[name] = Profile(name, float(cm["tpWeight"]), float(cm["fpWeight"]), float(cm["fnWeight"]))
    return out


def load_windows(path: Path) -> dict[str, list[tuple[np.datetime64, np.datetime64]]]:
    """Read ``labels/combined_windows.json``: ``{relpath: [(start, end), ...]}``."""
    try:
        raw = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"cannot read NAB windows: {exc}", where=str(path)) from None
    return {
        rel: [(np.datetime64(pd.Timestamp(a)), np.datetime64(pd.Timestamp(b))) for a, b in wins]
        for rel, wins in raw.items()
    }


def scaled_sigmoid(position: FloatArray) -> FloatArray:
    """NAB's scaled sigmoid: 0.987 at the left window edge (-1), 0 at the right edge, -1 from 3 on.

    >>> [round(float(v), 5) for v in scaled_sigmoid(np.array([-1.0, -0.5, 0.0, 1.0, 3.0]))]
    [0.98661, 0.84828, 0.0, -0.98661, -1.0]
    """
    out = 2.0 / (1.0 + np.exp(5.0 * np.clip(position, -50, 50))) - 1.0
    return np.where(position >= 3.0, -1.0, out)


@dataclass(frozen=True)
class FileSweep:
    """The scorable rows of one file: anomaly scores, the weight a detection there would earn, and the window.

    ``window`` is -1 outside windows, else the window's index in the corpus (after :class:`CorpusSweep`
    renumbers them) or in the file.
    """

    name: str
    scores: FloatArray
    tp_weighted: FloatArray  # detection value if the row is inside a window (unit tp weight)
    fp_position: FloatArray  # sigmoid of the position past the previous window (unit fp weight), outside windows
    window: IntArray
    n_windows: int
    n_rows: int

    def weights(self, profile: Profile) -> FloatArray:
        return np.where(self.window >= 0, self.tp_weighted * profile.tp_weight, self.fp_position * profile.fp_weight)


def sweep_file(
    name: str,
    timestamps: npt.NDArray[np.datetime64],
    scores: FloatArray,
    windows: Sequence[tuple[np.datetime64, np.datetime64]],
) -> FileSweep:
    """Per-row sweep values of one file (NAB's ``calcSweepScore``), probationary rows removed."""
    n = len(timestamps)
    if len(scores) != n:
        raise DataError(f"{len(scores)} anomaly scores for {n} rows", where=name)
    ts = timestamps.astype("datetime64[ns]")
    window = np.full(n, -1, dtype=np.int64)
    tp = np.zeros(n)
    fp = np.full(n, -1.0)
    max_tp = float(scaled_sigmoid(np.array([-1.0]))[0])
    idx = np.arange(n, dtype=np.float64)
    prev_right, prev_width = -1, 0.0
    bounds = []
    for k, (start, end) in enumerate(windows):
        a, b = np.array([start, end]).astype("datetime64[ns]")
        left = int(np.searchsorted(ts, a, side="left"))
        right = int(np.searchsorted(ts, b, side="right")) - 1
        if left > right or left >= n:
            continue
        bounds.append((k, left, right))
    for k, left, right in bounds:
        # rows after the previous window and before this one: false-positive weights relative to the previous
        seg = slice(prev_right + 1, left)
        if prev_right >= 0:
            fp[seg] = scaled_sigmoid(np.abs(idx[seg] - prev_right) / (prev_width - 1.0))
        width = float(right - left + 1)
        pos = -(right - idx[left : right + 1] + 1.0) / width
        tp[left : right + 1] = scaled_sigmoid(pos) / max_tp
        window[left : right + 1] = k
        prev_right, prev_width = right, width
    if prev_right >= 0:
        seg = slice(prev_right + 1, n)
        fp[seg] = scaled_sigmoid(np.abs(idx[seg] - prev_right) / (prev_width - 1.0))
    probation = int(min(np.floor(PROBATION_PCT * n), PROBATION_MAX_ROWS))
    keep = slice(probation, n)
    kept_windows = np.unique(window[keep][window[keep] >= 0])
    return FileSweep(
        name=name,
        scores=np.asarray(scores, dtype=np.float64)[keep],
        tp_weighted=tp[keep],
        fp_position=fp[keep],
        window=window[keep],
        n_windows=len(kept_windows),
        n_rows=n,
    )


class CorpusSweep:
    """All files of a corpus, ready to be scored at any threshold or swept over all of them.

    ``total_windows`` is the number of labelled windows (perfect score = ``tp_weight * total_windows``).
    """

    def __init__(self, files: Sequence[FileSweep], total_windows: int) -> None:
        self.files = list(files)
        self.total_windows = total_windows
        offsets, off = [], 0
        for f in self.files:
            offsets.append(off)
            off += max(int(f.window.max(initial=-1)) + 1, 0)
        self._n_window_ids = off
        self.scores = np.concatenate([f.scores for f in self.files]) if self.files else np.empty(0)
        self.window = np.concatenate(
            [np.where(f.window >= 0, f.window + o, -1) for f, o in zip(self.files, offsets, strict=True)]
        ) if self.files else np.empty(0, dtype=np.int64)
        self.file_index = np.concatenate(
            [np.full(len(f.scores), i) for i, f in enumerate(self.files)]
        ) if self.files else np.empty(0, dtype=np.int64)
        self._tp = np.concatenate([f.tp_weighted for f in self.files]) if self.files else np.empty(0)
        self._fp = np.concatenate([f.fp_position for f in self.files]) if self.files else np.empty(0)
        self.scorable_windows = int(sum(f.n_windows for f in self.files))

    def _raw_weights(self, profile: Profile) -> FloatArray:
        return np.where(self.window >= 0, self._tp * profile.tp_weight, self._fp * profile.fp_weight)

    def score_at(self, threshold: float, profile: Profile) -> float:
        """Raw corpus score with detections at ``score >= threshold``."""
        return float(self.per_file_at(threshold, profile).sum())

    def per_file_at(self, threshold: float, profile: Profile) -> FloatArray:
        """Raw score of each file at ``threshold``."""
        w = self._raw_weights(profile)
        det = self.scores >= threshold
        nfiles = len(self.files)
        fp_mask = det & (self.window < 0)
        out = np.bincount(self.file_index[fp_mask], weights=w[fp_mask], minlength=nfiles).astype(np.float64)
        # each window: its best detection, or -fn_weight
        best = np.full(self._n_window_ids, -np.inf)
        in_win = det & (self.window >= 0)
        np.maximum.at(best, self.window[in_win], w[in_win])
        win_file = np.full(self._n_window_ids, -1)
        win_file[self.window[self.window >= 0]] = self.file_index[self.window >= 0]
        present = win_file >= 0
        value = np.where(np.isfinite(best), best, -profile.fn_weight)
        out += np.bincount(win_file[present], weights=value[present], minlength=nfiles)
        return out

    def sweep(self, profile: Profile) -> tuple[FloatArray, FloatArray]:
        """Raw corpus score at every distinct threshold: ``(thresholds descending, scores)``.

        The same as scoring each threshold with :meth:`score_at`, computed in one pass: rows are taken
        from the highest score down; a window's value rises to the best detection so far.
        """
        if len(self.scores) == 0:
            return np.array([1.1]), np.array([-profile.fn_weight * self.scorable_windows])
        order = np.argsort(-self.scores, kind="stable")
        s = self.scores[order]
        w = self._raw_weights(profile)[order]
        win = self.window[order]
        delta = np.where(win < 0, w, 0.0)
        in_win = win >= 0
        if in_win.any():
            pos = np.flatnonzero(in_win)
            frame = pd.DataFrame({"win": win[pos], "w": w[pos]})
            runmax = frame.groupby("win", sort=False)["w"].cummax().to_numpy()
            prev = frame.assign(r=runmax).groupby("win", sort=False)["r"].shift(1)
            prev_vals = prev.to_numpy(dtype=np.float64, na_value=-profile.fn_weight)
            delta[pos] = runmax - prev_vals
        total = -profile.fn_weight * self.scorable_windows + np.cumsum(delta)
        last_of_group = np.r_[s[1:] != s[:-1], True]
        thresholds = np.r_[1.1, s[last_of_group]]
        values = np.r_[-profile.fn_weight * self.scorable_windows, total[last_of_group]]
        return thresholds, values

    def best(self, profile: Profile) -> tuple[float, float]:
        """``(threshold, raw score)`` maximising the corpus score (the highest threshold among ties)."""
        thresholds, values = self.sweep(profile)
        i = int(np.argmax(values))
        return float(thresholds[i]), float(values[i])

    def normalise(self, raw: float, profile: Profile) -> float:
        """100 for a perfect detector, 0 for the null detector."""
        perfect = profile.tp_weight * self.total_windows
        null = -profile.fn_weight * self.total_windows
        return 100.0 * (raw - null) / (perfect - null)


def score_corpus(
    results: Mapping[str, tuple[npt.NDArray[np.datetime64], FloatArray]],
    windows: Mapping[str, Sequence[tuple[np.datetime64, np.datetime64]]],
) -> CorpusSweep:
    """Build a :class:`CorpusSweep` from ``{relpath: (timestamps, anomaly scores)}`` and the label windows."""
    missing = sorted(set(windows) - set(results))
    if missing:
        raise DataError(f"no results for {len(missing)} labelled files, e.g. {missing[0]}")
    files = [sweep_file(rel, ts, sc, windows[rel]) for rel, (ts, sc) in sorted(results.items())]
    total = sum(len(windows[rel]) for rel in results)
    return CorpusSweep(files, total)
