"""Root-cause analysis: fault onset, then services and indicators ranked by robust, topology-aware deviations.

:func:`analyze` is the entry point; :mod:`opsmind.rca.baro` holds the BARO-style baseline the benchmark compares
against.
"""

from __future__ import annotations

from opsmind.rca.analyze import analyze, metric_indicators
from opsmind.rca.graph import CallGraph, calls_from_spans
from opsmind.rca.logs import parse_log_message, score_logs, template_of
from opsmind.rca.model import Case, Cause, Evidence, Indicator, LogLines, Onset, RcaResult, to_epoch_s
from opsmind.rca.onset import detect_onset
from opsmind.rca.scoring import deviations, metric_kind
from opsmind.rca.settings import RcaSettings

__all__ = [
    "CallGraph",
    "Case",
    "Cause",
    "Evidence",
    "Indicator",
    "LogLines",
    "Onset",
    "RcaResult",
    "RcaSettings",
    "analyze",
    "calls_from_spans",
    "detect_onset",
    "deviations",
    "metric_indicators",
    "metric_kind",
    "parse_log_message",
    "score_logs",
    "template_of",
    "to_epoch_s",
]
