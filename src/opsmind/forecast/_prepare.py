"""Shared preparation of a training series: seasonality, gap filling, and the notes that explain both."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from opsmind.core import FloatArray
from opsmind.forecast.seasonality import detect_periods, fill_gaps

__all__ = ["Prepared", "prepare"]


@dataclass(frozen=True)
class Prepared:
    y: FloatArray                # gap-free values
    periods: tuple[int, ...]     # seasonal periods in steps, ascending (may be empty)
    notes: tuple[str, ...]
    nonnegative: bool            # every observed value is >= 0


def prepare(y: FloatArray, step_s: float, periods: Sequence[int] | None = None, max_steps: int | None = None
            ) -> Prepared:
    """Keep at most ``max_steps`` recent steps, detect (or check) periods, fill gaps; explain each step."""
    notes: list[str] = []
    if max_steps is not None and y.size > max_steps:
        notes.append(f"used the last {max_steps} of {y.size} steps")
        y = y[-max_steps:]
    # Leading and trailing gaps carry no information: the series starts at its first observation.
    finite = np.flatnonzero(np.isfinite(y))
    first = int(finite[0])
    if first > 0:
        y = y[first:]
    if periods is None:
        found, pnotes = detect_periods(y, step_s)
        notes.extend(pnotes)
    else:
        found = tuple(sorted(int(p) for p in periods if int(p) >= 2))
        short = [p for p in found if y.size < 2 * p]
        if short:
            notes.append(f"not enough history for period(s) {', '.join(map(str, short))} steps "
                         f"(need two cycles, have {y.size} steps): left out")
        found = tuple(p for p in found if p not in short)
    missing = int(np.isnan(y).sum())
    if missing:
        notes.append(f"{missing} missing steps ({100 * missing / y.size:.1f} %) filled "
                     + ("along the seasonal profile" if found else "by linear interpolation"))
    filled = fill_gaps(y, found)
    nonneg = bool(np.nanmin(y) >= 0)
    return Prepared(filled, found, tuple(notes), nonneg)
