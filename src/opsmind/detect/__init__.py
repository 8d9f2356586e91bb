"""Anomaly detectors. Importing this package registers every detector in ``DETECTORS``."""

from __future__ import annotations

from opsmind.detect.base import DETECTORS, Detector
from opsmind.detect.bocpd import BOCPD
from opsmind.detect.ensemble import Ensemble
from opsmind.detect.ewma import EWMA
from opsmind.detect.iforest import IsolationForest
from opsmind.detect.iqr import RollingIQR
from opsmind.detect.lof import LOF
from opsmind.detect.mad import RollingMAD
from opsmind.detect.novelty import WindowNovelty
from opsmind.detect.range import RangeExcess
from opsmind.detect.recent_range import RecentRangeExcess
from opsmind.detect.robust_multivariate import RobustMultivariate
from opsmind.detect.seasonal import SeasonalProfile
from opsmind.detect.threshold import Decision, Thresholder

__all__ = [
    "BOCPD",
    "DETECTORS",
    "EWMA",
    "LOF",
    "Decision",
    "Detector",
    "Ensemble",
    "IsolationForest",
    "RangeExcess",
    "RecentRangeExcess",
    "RobustMultivariate",
    "RollingIQR",
    "RollingMAD",
    "SeasonalProfile",
    "Thresholder",
    "WindowNovelty",
]
