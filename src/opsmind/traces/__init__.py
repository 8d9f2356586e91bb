"""Trace analysis: critical paths (CRISP), call graphs, latency baselines, service ranking and workflow advice.

Everything here is a pure function of :class:`~opsmind.core.spans.Trace` values (read them with
:mod:`opsmind.sources.traces`): no I/O, no clock.
"""

from __future__ import annotations

from opsmind.traces.advice import Advice, AdviceSettings, TimeoutSuggestion, advise, suggest_timeouts
from opsmind.traces.critical_path import (
    CriticalPath,
    ErrorStats,
    PathSegment,
    PathTotal,
    TraceAnalysis,
    aggregate_critical_paths,
    analyze_trace,
    cp_time_saved,
    critical_path,
)
from opsmind.traces.graph import (
    Call,
    EdgeStats,
    OperationBaseline,
    call_edges,
    call_graph,
    calls,
    latency_baselines,
    self_times,
)
from opsmind.traces.ranking import rank_services
from opsmind.traces.report import TraceReport, summarize

__all__ = [
    "Advice",
    "AdviceSettings",
    "Call",
    "CriticalPath",
    "EdgeStats",
    "ErrorStats",
    "OperationBaseline",
    "PathSegment",
    "PathTotal",
    "TimeoutSuggestion",
    "TraceAnalysis",
    "TraceReport",
    "advise",
    "aggregate_critical_paths",
    "analyze_trace",
    "call_edges",
    "call_graph",
    "calls",
    "cp_time_saved",
    "critical_path",
    "latency_baselines",
    "rank_services",
    "self_times",
    "suggest_timeouts",
    "summarize",
]
