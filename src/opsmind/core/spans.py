"""Spans and traces: the typed values every trace analysis works on.

A :class:`Span` is one timed operation of one service (times in integer microseconds since the Unix epoch, or
since any origin shared by the spans of a trace). A :class:`Trace` is the spans of one request, indexed by span id
and parent, built with :meth:`Trace.from_spans`, which never raises on imperfect data and instead records a
warning for each kind of problem it repaired:

- duplicate span ids: the first span with an id is kept, later ones are dropped;
- a span whose end is before its start: its end is set to its start;
- a span that names itself as its parent: it becomes a root;
- orphans (the parent id is not in the trace, e.g. a span that was never reported): the span becomes a root;
- parent cycles: the earliest span of the cycle becomes a root;
- spans outside their parent's interval (clock skew): kept as they are and counted; the critical path clips them.

:func:`group_traces` turns any iterable of spans into traces, one per trace id.
"""

from __future__ import annotations

import dataclasses
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

__all__ = ["Span", "Trace", "count_warnings", "group_traces"]

_EMPTY: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Span:
    """One operation of one service within one trace.

    ``follows_from`` marks an asynchronous child (Jaeger ``FOLLOWS_FROM``, a message consumer): its parent does
    not wait for it. ``attributes`` are the span's tags as strings (read-only).

    Examples
    --------
    >>> s = Span("t1", "a", None, "cart", "GET /cart", 1_000, 1_250, attributes={"http.status_code": "200"})
    >>> s.duration_us, s.name, s.attributes["http.status_code"]
    (250, '[cart] GET /cart', '200')
    >>> import pickle
    >>> pickle.loads(pickle.dumps(s)) == s
    True
    """

    trace_id: str
    span_id: str
    parent_id: str | None
    service: str
    operation: str
    start_us: int
    end_us: int
    error: bool = False
    attributes: Mapping[str, str] = field(default_factory=lambda: _EMPTY, hash=False)
    follows_from: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.attributes, MappingProxyType):
            object.__setattr__(self, "attributes", MappingProxyType(dict(self.attributes)))

    @property
    def duration_us(self) -> int:
        return self.end_us - self.start_us

    @property
    def name(self) -> str:
        """``[service] operation``: the key critical-path results are reported under (as CRISP does)."""
        return f"[{self.service}] {self.operation}"

    def __reduce__(self) -> tuple[type[Span], tuple[Any, ...]]:
        """Pickle with a plain dict (a read-only mapping proxy cannot be pickled), e.g. for process pools."""
        return (Span, (self.trace_id, self.span_id, self.parent_id, self.service, self.operation, self.start_us,
                       self.end_us, self.error, dict(self.attributes), self.follows_from))

    def replace(self, **changes: Any) -> Span:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)


class Trace:
    """The spans of one trace with their tree structure. Build it with :meth:`from_spans`.

    After construction every span's ``parent_id`` is either ``None`` (a root) or the id of a span of the trace,
    and the parent relation has no cycles, so every span is reachable from :attr:`roots`.

    Examples
    --------
    >>> spans = [Span("t", "a", None, "web", "GET /", 0, 100), Span("t", "b", "a", "db", "query", 10, 40),
    ...          Span("t", "c", "zz", "cache", "get", 50, 60), Span("t", "b", "a", "db", "query", 10, 40)]
    >>> tr = Trace.from_spans(spans)
    >>> [s.span_id for s in tr.roots], [s.span_id for s in tr.children("a")], tr.root.span_id
    (['a', 'c'], ['b'], 'a')
    >>> tr.warnings
    ('1 duplicate span id(s) dropped (first: b)', '1 span(s) whose parent is missing became roots (first: c)')
    """

    __slots__ = ("_by_id", "_children", "_roots", "spans", "trace_id", "warnings")

    def __init__(self, trace_id: str, spans: tuple[Span, ...], warnings: tuple[str, ...] = ()) -> None:
        """Use :meth:`from_spans`; this constructor trusts that ``spans`` are already consistent."""
        self.trace_id = trace_id
        self.spans = spans
        self.warnings = warnings
        self._by_id = {s.span_id: s for s in spans}
        children: dict[str, list[Span]] = defaultdict(list)
        roots: list[Span] = []
        for s in spans:
            if s.parent_id is None:
                roots.append(s)
            else:
                children[s.parent_id].append(s)
        key = _order_key
        self._children = {k: tuple(sorted(v, key=key)) for k, v in children.items()}
        self._roots = tuple(sorted(roots, key=key))

    # ----------------------------------------------------------------------------------------------- building
    @classmethod
    def from_spans(cls, spans: Iterable[Span], trace_id: str | None = None) -> Trace:
        """Build a consistent trace from spans, repairing what is wrong and recording a warning for each kind."""
        issues: dict[str, list[str]] = defaultdict(list)
        kept: dict[str, Span] = {}
        for s in spans:
            if trace_id is None:
                trace_id = s.trace_id
            if s.span_id in kept:
                issues["duplicate span id(s) dropped"].append(s.span_id)
                continue
            if s.end_us < s.start_us:
                issues["span(s) ending before they start: end set to start"].append(s.span_id)
                s = s.replace(end_us=s.start_us)
            if s.parent_id is not None and s.parent_id == s.span_id:
                issues["span(s) naming themselves as parent became roots"].append(s.span_id)
                s = s.replace(parent_id=None)
            kept[s.span_id] = s
        for sid, s in list(kept.items()):
            if s.parent_id is not None and s.parent_id not in kept:
                issues["span(s) whose parent is missing became roots"].append(sid)
                kept[sid] = s.replace(parent_id=None)
        _break_cycles(kept, issues)
        skewed = [s.span_id for s in kept.values() if s.parent_id is not None
                  and (s.start_us < kept[s.parent_id].start_us or s.end_us > kept[s.parent_id].end_us)]
        if skewed:
            issues["span(s) outside their parent's interval (clock skew?): clipped on the critical path"] = skewed
        warnings = tuple(f"{len(ids)} {what} (first: {ids[0]})" for what, ids in issues.items())
        return cls(trace_id or "", tuple(sorted(kept.values(), key=_order_key)), warnings)

    # ------------------------------------------------------------------------------------------------ queries
    def __len__(self) -> int:
        return len(self.spans)

    def __iter__(self) -> Iterator[Span]:
        return iter(self.spans)

    def __contains__(self, span_id: object) -> bool:
        return span_id in self._by_id

    def __repr__(self) -> str:
        return f"Trace({self.trace_id!r}, {len(self.spans)} spans, {len(self.warnings)} warnings)"

    def span(self, span_id: str) -> Span:
        """The span with this id (``KeyError`` if absent)."""
        return self._by_id[span_id]

    def get(self, span_id: str | None) -> Span | None:
        return self._by_id.get(span_id) if span_id is not None else None

    def parent(self, span: Span) -> Span | None:
        return self.get(span.parent_id)

    def children(self, span_id: str) -> tuple[Span, ...]:
        """The direct children of a span, by start time."""
        return self._children.get(span_id, ())

    @property
    def roots(self) -> tuple[Span, ...]:
        """Spans without a parent (after repair), by start time."""
        return self._roots

    @property
    def root(self) -> Span | None:
        """The main root: the longest root span (the earliest on ties); ``None`` for an empty trace."""
        if not self._roots:
            return None
        return min(self._roots, key=lambda s: (-s.duration_us, s.start_us, s.span_id))

    @property
    def start_us(self) -> int:
        return min((s.start_us for s in self.spans), default=0)

    @property
    def end_us(self) -> int:
        return max((s.end_us for s in self.spans), default=0)

    @property
    def duration_us(self) -> int:
        """The main root's duration (the request's latency as its entry point saw it)."""
        r = self.root
        return r.duration_us if r is not None else 0

    @property
    def has_error(self) -> bool:
        return any(s.error for s in self.spans)

    def services(self) -> set[str]:
        return {s.service for s in self.spans}

    def depth_first(self, start: Span | None = None) -> Iterator[tuple[Span, int]]:
        """Every span reachable from ``start`` (default: every root) with its depth, parents before children."""
        stack = [(start, 0)] if start is not None else [(r, 0) for r in reversed(self._roots)]
        while stack:
            span, depth = stack.pop()
            yield span, depth
            stack.extend((c, depth + 1) for c in reversed(self.children(span.span_id)))


def _order_key(s: Span) -> tuple[int, int, str]:
    return (s.start_us, -s.end_us, s.span_id)


def _break_cycles(kept: dict[str, Span], issues: dict[str, list[str]]) -> None:
    """Make every span reachable from a root: the earliest span of each parent cycle becomes a root."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done (reaches a root)
    for sid in sorted(kept, key=lambda i: _order_key(kept[i])):
        path: list[str] = []
        cur: str | None = sid
        while cur is not None and state.get(cur) is None:
            state[cur] = 1
            path.append(cur)
            cur = kept[cur].parent_id
        if cur is not None and state.get(cur) == 1:  # walked into the current path: a cycle
            cycle = path[path.index(cur):]
            first = min(cycle, key=lambda i: _order_key(kept[i]))
            issues["parent cycle(s) broken: the earliest span became a root"].append(first)
            kept[first] = kept[first].replace(parent_id=None)
        for p in path:
            state[p] = 2


def group_traces(spans: Iterable[Span]) -> list[Trace]:
    """One :class:`Trace` per trace id, in order of first appearance.

    >>> ts = group_traces([Span("t1", "a", None, "s", "op", 0, 5), Span("t2", "b", None, "s", "op", 1, 2)])
    >>> [(t.trace_id, len(t)) for t in ts]
    [('t1', 1), ('t2', 1)]
    """
    by_trace: dict[str, list[Span]] = defaultdict(list)
    for s in spans:
        by_trace[s.trace_id].append(s)
    return [Trace.from_spans(v, trace_id=k) for k, v in by_trace.items()]


def count_warnings(traces: Iterable[Trace]) -> Counter[str]:
    """How many traces carry each kind of warning (the count prefix removed), for a one-line summary."""
    out: Counter[str] = Counter()
    for t in traces:
        for w in t.warnings:
            out[w.split(" ", 1)[1].split(" (first:", 1)[0]] += 1
    return out
