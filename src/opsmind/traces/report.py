"""One report over a set of traces: a critical path, critical-path time per operation and service, and advice.

This is what ``opsmind traces analyze`` prints; it is a plain function of the traces so the API and the dashboard
can show the same thing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from opsmind.core.errors import ConfigError, DataError
from opsmind.core.spans import Trace
from opsmind.traces.advice import Advice, AdviceSettings, advise
from opsmind.traces.critical_path import CriticalPath, PathTotal, aggregate_critical_paths, critical_path

__all__ = ["TraceReport", "summarize"]


@dataclass(frozen=True)
class TraceReport:
    traces: int
    spans: int
    trace_id: str
    critical_path: CriticalPath
    by_operation: list[PathTotal]
    by_service: list[PathTotal]
    advice: list[Advice]
    warnings: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        cp = self.critical_path
        return {
            "traces": self.traces,
            "spans": self.spans,
            "critical_path": {
                "trace_id": self.trace_id,
                "duration_ms": cp.duration_us / 1000.0,
                "segments": [{"service": s.span.service, "operation": s.span.operation, "span_id": s.span.span_id,
                              "depth": s.depth, "start_ms": (s.start_us - cp.root.start_us) / 1000.0,
                              "duration_ms": (s.end_us - s.start_us) / 1000.0,
                              "exclusive_ms": s.exclusive_us / 1000.0, "error": s.span.error}
                             for s in cp.segments],
                "warnings": list(cp.warnings),
            },
            "critical_path_by_operation": [_total_json(t) for t in self.by_operation],
            "critical_path_by_service": [_total_json(t) for t in self.by_service],
            "advice": [a.to_json() for a in self.advice],
            "warnings": list(self.warnings),
        }


def _total_json(t: PathTotal) -> dict[str, Any]:
    return {"key": t.key, "total_ms": t.total_us / 1000.0, "traces": t.traces, "share": round(t.share, 4),
            "example_trace_ids": list(t.example_trace_ids)}


def summarize(traces: Sequence[Trace], *, trace_id: str | None = None, warnings: Sequence[str] = (),
              settings: AdviceSettings | None = None) -> TraceReport:
    """The report: the critical path of ``trace_id`` (default: the slowest trace), aggregated critical-path time
    over all traces, and the workflow advice."""
    usable = [t for t in traces if t.root is not None]
    if not usable:
        raise DataError("no spans to analyse")
    if trace_id is not None:
        chosen = next((t for t in usable if t.trace_id == trace_id), None)
        if chosen is None:
            raise ConfigError(f"--trace-id {trace_id!r} is not in the input ({len(usable)} traces)")
    else:
        chosen = max(usable, key=lambda t: (t.duration_us, t.trace_id))
    chosen_path = critical_path(chosen)
    assert chosen_path is not None  # usable traces have a root
    return TraceReport(
        traces=len(usable),
        spans=sum(len(t) for t in usable),
        trace_id=chosen.trace_id,
        critical_path=chosen_path,
        # generators: one trace's path in memory at a time
        by_operation=aggregate_critical_paths((p for t in usable if (p := critical_path(t))), by="operation"),
        by_service=aggregate_critical_paths((p for t in usable if (p := critical_path(t))), by="service"),
        advice=advise(usable, settings),
        warnings=tuple(warnings),
    )
