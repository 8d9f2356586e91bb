"""Call graphs and per-operation latency baselines from traces.

- :func:`self_times`: each span's duration minus the time covered by its synchronous children (clipped to the
  span), i.e. the time the span's own service spent outside its calls;
- :func:`call_edges` / :func:`call_graph`: service-level edges ``caller -> callee`` with call counts, error
  counts and latency quantiles, as seen from the caller;
- :func:`latency_baselines`: p50/p95/p99/p99.9 of duration and self time, and the error rate, per
  ``(service, operation)``.

A *call* is a span whose parent belongs to another service, or a client span whose single child belongs to
another service (client/server span pairs as OpenTelemetry and Jaeger instrumentations record them; the call is
then measured on the client side, network included).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from opsmind.core.spans import Span, Trace

__all__ = [
    "Call",
    "EdgeStats",
    "OperationBaseline",
    "call_edges",
    "call_graph",
    "callee_of",
    "calls",
    "latency_baselines",
    "quantiles_us",
    "self_times",
]


def self_times(trace: Trace) -> dict[str, int]:
    """Span id -> the span's duration minus the union of its synchronous children's intervals (µs, >= 0).

    >>> t = Trace.from_spans([Span("t", "a", None, "web", "GET", 0, 100), Span("t", "b", "a", "db", "q", 10, 40),
    ...                       Span("t", "c", "a", "db", "q", 30, 60), Span("t", "d", "a", "mq", "pub", 90, 130)])
    >>> self_times(t)["a"]
    40
    """
    out: dict[str, int] = {}
    for s in trace.spans:
        intervals = sorted((max(c.start_us, s.start_us), min(c.end_us, s.end_us))
                           for c in trace.children(s.span_id) if not c.follows_from)
        covered, cur_start, cur_end = 0, None, None
        for a, b in intervals:
            if b <= a:
                continue
            if cur_end is None or a > cur_end:
                if cur_end is not None and cur_start is not None:
                    covered += cur_end - cur_start
                cur_start, cur_end = a, b
            else:
                cur_end = max(cur_end, b)
        if cur_end is not None and cur_start is not None:
            covered += cur_end - cur_start
        out[s.span_id] = max(0, s.duration_us - covered)
    return out


@dataclass(frozen=True)
class Call:
    """One call from ``caller`` (a span of the calling service) to ``callee`` (the called service's span)."""

    caller: Span
    callee: Span
    client: Span  # the span measuring the call on the caller's side (the callee itself when there is no client)

    @property
    def latency_us(self) -> int:
        return self.client.duration_us

    @property
    def error(self) -> bool:
        return self.client.error or self.callee.error


def callee_of(trace: Trace, span: Span) -> Span | None:
    """The remote span a span calls: its single child of another service (client/server pair), if any."""
    kids = [k for k in trace.children(span.span_id) if k.service != span.service]
    return kids[0] if len(kids) == 1 and len(trace.children(span.span_id)) == 1 else None


def calls(trace: Trace) -> Iterator[Call]:
    """Every cross-service call of a trace, each once."""
    for s in trace.spans:
        parent = trace.parent(s)
        if parent is None or parent.service == s.service:
            continue
        if callee_of(trace, parent) is s:  # caller -> client span -> server span
            grand = trace.parent(parent)
            yield Call(grand if grand is not None and grand.service == parent.service else parent, s, parent)
        else:
            yield Call(parent, s, s)


def quantiles_us(values: Sequence[int] | np.ndarray, qs: Sequence[float]) -> list[float]:
    if len(values) == 0:
        return [float("nan")] * len(qs)
    return [float(v) for v in np.quantile(np.asarray(values, dtype=np.float64), qs)]


@dataclass(frozen=True)
class EdgeStats:
    caller: str
    callee: str
    calls: int
    errors: int
    p50_us: float
    p99_us: float

    @property
    def error_rate(self) -> float:
        return self.errors / self.calls if self.calls else 0.0


def call_edges(traces: Iterable[Trace]) -> dict[tuple[str, str], list[Call]]:
    """Calls grouped by ``(caller service, callee service)``."""
    out: dict[tuple[str, str], list[Call]] = defaultdict(list)
    for t in traces:
        for c in calls(t):
            out[(c.caller.service, c.callee.service)].append(c)
    return dict(out)


def call_graph(traces: Iterable[Trace]) -> list[EdgeStats]:
    """The service call graph: one entry per ``caller -> callee`` edge, most called first.

    >>> t = Trace.from_spans([Span("t", "a", None, "web", "GET", 0, 100), Span("t", "b", "a", "db", "q", 10, 40)])
    >>> [(e.caller, e.callee, e.calls) for e in call_graph([t])]
    [('web', 'db', 1)]
    """
    out = []
    for (a, b), cs in call_edges(traces).items():
        p50, p99 = quantiles_us([c.latency_us for c in cs], (0.5, 0.99))
        out.append(EdgeStats(a, b, len(cs), sum(c.error for c in cs), p50, p99))
    return sorted(out, key=lambda e: (-e.calls, e.caller, e.callee))


@dataclass(frozen=True)
class OperationBaseline:
    """Latency and error baseline of one ``(service, operation)`` (µs)."""

    service: str
    operation: str
    count: int
    errors: int
    p50_us: float
    p95_us: float
    p99_us: float
    p999_us: float
    self_p50_us: float
    self_p95_us: float

    @property
    def error_rate(self) -> float:
        return self.errors / self.count if self.count else 0.0


def latency_baselines(traces: Iterable[Trace]) -> list[OperationBaseline]:
    """Per-operation baselines, sorted by service and operation.

    >>> t = Trace.from_spans([Span("t", "a", None, "web", "GET", 0, 100), Span("t", "b", "a", "db", "q", 10, 40)])
    >>> [(b.service, b.p50_us, b.self_p50_us) for b in latency_baselines([t])]
    [('db', 30.0, 30.0), ('web', 100.0, 70.0)]
    """
    durations: dict[tuple[str, str], list[int]] = defaultdict(list)
    selfs: dict[tuple[str, str], list[int]] = defaultdict(list)
    errors: dict[tuple[str, str], int] = defaultdict(int)
    for t in traces:
        own = self_times(t)
        for s in t.spans:
            key = (s.service, s.operation)
            durations[key].append(s.duration_us)
            selfs[key].append(own[s.span_id])
            errors[key] += s.error
    out = []
    for key in sorted(durations):
        p50, p95, p99, p999 = quantiles_us(durations[key], (0.5, 0.95, 0.99, 0.999))
        s50, s95 = quantiles_us(selfs[key], (0.5, 0.95))
        out.append(OperationBaseline(key[0], key[1], len(durations[key]), errors[key], p50, p95, p99, p999, s50, s95))
    return out
