"""The call graph RCA propagates over: :class:`opsmind.core.graph.CallGraph` (one type for incidents, RCA and the
engine), re-exported here."""

from opsmind.core.graph import CallGraph, calls_from_spans

__all__ = ["CallGraph", "calls_from_spans"]
