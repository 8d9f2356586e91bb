"""Per-series threshold calibration from people's feedback on anomalies.

People mark a series' anomalies as true or false positives and report the anomalies opsmind missed
(``store.feedback``). :func:`calibrated_threshold` turns those counts into the alert threshold for that series:
false positives raise it, confirmed misses lower it, and true positives pull it back toward the configured base.

The estimate works on the odds of the threshold, ``o = t / (1 - t)``. With ``tp``, ``fp`` and ``m`` the counts of
true positives, false positives and misses, and ``a`` pseudo-counts of true positives (additive smoothing: a
Beta(a, 0) prior that says the base threshold is right), two smoothed rates are estimated::

    precision  P = (tp + a) / (tp + fp + a)     # how many alerts were real
    recall     R = (tp + a) / (tp + m + a)      # how many real anomalies were alerted

and the threshold's odds are scaled by their ratio, raised to a ``strength``::

    o' = o_base * (R / P) ** strength = o_base * ((tp + fp + a) / (tp + m + a)) ** strength
    t' = clip(o' / (1 + o'), low, high)

So each false positive multiplies the odds by a factor above 1 (smaller as evidence accumulates), each miss
divides them, and true positives dilute both toward the base: a series with many confirmed true positives
barely moves on one false alarm. With no feedback ``t' = base`` exactly. The result is bounded by ``floor``
(default 0.3, above the thresholder's default re-arm level of 0.2, so hysteresis keeps working) and
``ceiling`` (default 0.999); a base outside those bounds is kept as it is when there is no feedback, and the
bounds widen to include it.

Defaults ``a = 3``, ``strength = 1.5``. Measured in ``tests/test_calibration.py`` (default detector, synthetic
series, feedback on a training segment, effect on a later held-out one, four series): false-positive feedback
halved the held-out false alarms (30 -> 15) and lost none of the real anomalies (15/16 both); missed feedback raised
the faint anomalies found from 19/40 to 24/40, at the cost of more false alarms (4 -> 20).

The function is pure and deterministic: it reads no clock and no store (the engine passes
``store.feedback.counts(tenant, series_id)``).

Examples
--------
>>> calibrated_threshold(0.5, {})
0.5
>>> round(calibrated_threshold(0.5, {"false_positive": 5}), 3)        # raised: odds x (8/3)^1.5
0.813
>>> round(calibrated_threshold(0.5, {"false_positive": 5, "true_positive": 20}), 3)  # pulled back
0.573
>>> round(calibrated_threshold(0.5, {"missed": 2}), 3)                # lowered: odds x (3/5)^1.5
0.317
>>> calibrated_threshold(0.5, {"false_positive": 10_000})             # bounded
0.999
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from opsmind.core import ConfigError, DataError

__all__ = ["CEILING", "FLOOR", "PRIOR", "STRENGTH", "calibrated_threshold"]

PRIOR = 3.0  # pseudo-counts of true positives: how much feedback it takes to move the threshold
STRENGTH = 1.5  # exponent on the recall/precision ratio
FLOOR = 0.3
CEILING = 0.999
_KEYS = ("true_positive", "false_positive", "missed")


def _count(counts: Mapping[str, int], key: str) -> float:
    value = counts.get(key, 0)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise DataError(f"feedback counts: {key} must be a count >= 0, got {value!r}", column=key)
    return float(value)


def calibrated_threshold(
    base: float,
    counts: Mapping[str, int],
    *,
    prior: float = PRIOR,
    strength: float = STRENGTH,
    floor: float = FLOOR,
    ceiling: float = CEILING,
) -> float:
    """The alert threshold of one series after its feedback (see the module docstring for the formula).

    Parameters
    ----------
    base
        The configured threshold, in (0, 1].
    counts
        Feedback counts: ``true_positive``, ``false_positive``, ``missed`` (missing keys count 0; other keys are
        ignored), as ``store.feedback.counts`` returns them.
    prior
        Pseudo-counts of true positives (> 0): larger means more feedback is needed to move the threshold.
    strength
        Exponent (> 0) on the recall/precision ratio.
    floor, ceiling
        Bounds of the result, ``0 < floor <= ceiling < 1``; widened to include ``base``.
    """
    if not (isinstance(base, int | float) and 0.0 < base <= 1.0):
        raise ConfigError(f"base threshold must be in (0, 1], got {base!r}")
    if not (prior > 0 and strength > 0):
        raise ConfigError(f"prior and strength must be > 0, got prior={prior!r}, strength={strength!r}")
    if not 0.0 < floor <= ceiling < 1.0:
        raise ConfigError(f"need 0 < floor <= ceiling < 1, got floor={floor!r}, ceiling={ceiling!r}")
    tp, fp, missed = (_count(counts, k) for k in _KEYS)
    shift = strength * math.log((tp + fp + prior) / (tp + missed + prior))
    if shift == 0.0 or (shift > 0.0 and base >= ceiling):
        return float(base)
    b = min(float(base), ceiling)
    threshold = 1.0 / (1.0 + math.exp(-(math.log(b / (1.0 - b)) + shift)))
    return min(max(threshold, min(floor, base)), max(ceiling, base))
