"""The thresholder: the one place where scores become decisions.

An alert opens when the probability reaches ``threshold``. Two guards keep one incident from paging many times:
*suppression* (no new alert within ``refractory`` observations of the last one or, with ``refractory_s`` set,
within ``refractory_s`` seconds of it: a duration means the same thing whatever the sampling rate) and
*hysteresis* (the probability must fall below ``clear``, by default 0.2, before another alert can open: an
incident that is still going on is not a new one, however long it lasts; ``clear=None`` turns this off). Each
alert gets a severity from the probability: critical, high, medium or low.

On NAB the hysteresis (with the default ensemble) raised the standard score on both the even- and the odd-indexed
halves of the corpus; a longer or shorter suppression did not.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from opsmind.core import ConfigError, FloatArray

__all__ = ["DEFAULT_SEVERITIES", "Decision", "Thresholder"]

DEFAULT_SEVERITIES: tuple[tuple[float, str], ...] = ((0.99, "critical"), (0.95, "high"), (0.8, "medium"), (0.0, "low"))


@dataclass(frozen=True)
class Decision:
    """What the thresholder decided for one observation."""

    is_anomaly: bool
    probability: float
    severity: str | None = None
    suppressed: bool = False  # above threshold, but inside the refractory period or before the clear level


class Thresholder:
    """Turns anomaly probabilities into alerts with suppression, hysteresis and severities.

    Parameters
    ----------
    threshold
        Probability at which an alert opens.
    refractory
        Observations after an alert during which no new alert opens (ignored when ``refractory_s`` is set).
    refractory_s
        Seconds after an alert (measured on the ``t`` passed in) during which no new alert opens; the default,
        8 hours, is 100 rows of 5-minute data. ``None`` counts ``refractory`` rows instead.
    clear
        The probability must drop below this level after an alert before a new alert can open (hysteresis; a
        level above ``threshold`` counts as ``threshold``); ``None`` re-arms as soon as the suppression period is
        over.
    severities
        ``(minimum probability, name)`` pairs, highest first.

    Examples
    --------
    >>> th = Thresholder(threshold=0.5, refractory=2, refractory_s=None, clear=None)   # suppression in rows
    >>> [th.process_one(float(t), p).is_anomaly for t, p in enumerate([0.1, 0.7, 0.9, 0.9, 0.9, 0.2])]
    [False, True, False, False, True, False]
    >>> th = Thresholder(refractory_s=3600.0, clear=None)   # suppression measured in time
    >>> [th.process_one(t, 0.9).is_anomaly for t in (0.0, 1800.0, 3600.0, 3601.0)]
    [True, False, False, True]
    >>> th = Thresholder(refractory_s=3600.0)               # with the default hysteresis: re-arm below 0.2
    >>> [th.process_one(t, p).is_anomaly for t, p in ((0.0, 0.9), (3601.0, 0.9), (7200.0, 0.1), (10800.0, 0.9))]
    [True, False, False, True]
    >>> Thresholder().process_one(0.0, 0.97).severity
    'high'
    """

    def __init__(
        self,
        threshold: float = 0.5,
        refractory: int = 100,
        clear: float | None = 0.2,
        severities: Sequence[tuple[float, str]] = DEFAULT_SEVERITIES,
        refractory_s: float | None = 28800.0,
    ) -> None:
        if not 0.0 < threshold <= 1.0:
            raise ConfigError(f"threshold must be in (0, 1], got {threshold!r}")
        if refractory < 0:
            raise ConfigError(f"refractory must be >= 0, got {refractory!r}")
        if clear is not None and not 0.0 <= clear <= 1.0:
            raise ConfigError(f"clear must be in [0, 1], got {clear!r}")
        self.threshold = threshold
        self.refractory = refractory
        self.clear = clear
        self.severities = tuple(sorted(severities, reverse=True))
        if refractory_s is not None and not refractory_s >= 0:
            raise ConfigError(f"refractory_s must be >= 0, got {refractory_s!r}")
        self.refractory_s = refractory_s
        self._since = refractory + 1  # observations since the last alert
        self._last_t = -np.inf  # time of the last alert
        self._armed = True

    def severity(self, probability: float) -> str:
        for level, name in self.severities:
            if probability >= level:
                return name
        return self.severities[-1][1]

    def process_one(self, t: float, probability: float) -> Decision:
        """Decide for one observation (``t`` is kept for symmetry with detectors and for logging)."""
        p = float(probability) if np.isfinite(probability) else 0.0
        self._since += 1
        if self.refractory_s is not None:
            recent = float(t) - self._last_t <= self.refractory_s
        else:
            recent = self._since <= self.refractory
        if self.clear is not None and p < min(self.clear, self.threshold):
            self._armed = True
        if p < self.threshold:
            return Decision(False, p)
        if recent or not self._armed:
            return Decision(False, p, suppressed=True)
        self._since = 0
        self._last_t = float(t)
        self._armed = self.clear is None
        return Decision(True, p, self.severity(p))

    def process(
        self, probabilities: FloatArray, times: FloatArray | None = None
    ) -> tuple[npt.NDArray[np.bool_], list[str | None]]:
        """Decisions for a batch: ``(is_anomaly, severities)`` (``None`` where no alert).

        ``times`` (seconds, one per probability) are needed for ``refractory_s``; without them row ``i`` is at
        time ``i``.
        """
        flags = np.zeros(len(probabilities), dtype=bool)
        sev: list[str | None] = [None] * len(probabilities)
        for i, p in enumerate(probabilities):
            d = self.process_one(float(i) if times is None else float(times[i]), float(p))
            flags[i] = d.is_anomaly
            sev[i] = d.severity
        return flags, sev
