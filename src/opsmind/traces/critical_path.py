"""Critical path of a trace, as CRISP defines it (Zhang et al., "CRISP: Critical Path Analysis of Large-Scale
Microservice Architectures", USENIX ATC 2022), with CRISP's error-path statistics.

The critical path of a span is the span itself followed, from the end backwards, by its last-finishing child,
then the child that finished last before *that* child started, and so on; each chosen child contributes its own
critical path recursively. A span's *exclusive* time on the path is its duration minus the durations of its
children on the path (the gaps between them, plus its work before the first and after the last). Exclusive times
of all path spans add up to the root's duration.

Imperfect traces, handled before the walk (:func:`prepare`):

- **clock skew**: a child that starts before its parent or ends after it is clipped to the parent's interval; a
  child wholly outside its parent is dropped with its subtree (as CRISP does). The exception is a remote call
  whose clocks differ: when the parent is a client span with a single server child (``span.kind`` tags) or the
  two run on different hosts (``hostname``/``host.name``), the child is shifted into the parent's interval
  (centred, as Jaeger's clock-skew adjuster does; its subtree moves with it) and its duration is capped at the
  parent's instead of being clipped;
- **near-sequential siblings**: a child counts as finishing before a sibling starts when they overlap by less than
  1 % of the parent's duration and no other sibling starts or ends within the overlap (CRISP's allowance);
- **asynchronous children** (``follows_from``: Jaeger ``FOLLOWS_FROM``, message consumers) are not waited for by
  their parent, so they are never on its critical path;
- **orphans and extra roots**: the path starts at the trace's main root (the longest root span).

Error statistics (:func:`analyze_trace`), in CRISP's terms: *total work* (sum of all durations), *time saved on
work* (durations of erroring spans), *time saved on the critical path* if erroring spans were eliminated,
honouring every series relation observed between siblings ("all series"), and the *error critical path*: path
spans that error or have an erroring descendant on the path (plus erroring spans reached from an erroring path
span through a chain of erroring spans), with exclusive time and error counts (self, propagated, stopped) per call
path. ``no_error_cp`` is the critical path that would remain without the erroring spans.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from opsmind.core.spans import Span, Trace

__all__ = [
    "OVERLAP_ALLOWANCE",
    "CallNode",
    "CallTree",
    "CriticalPath",
    "ErrorStats",
    "PathSegment",
    "PathTotal",
    "TraceAnalysis",
    "aggregate_critical_paths",
    "analyze_trace",
    "cp_time_saved",
    "critical_path",
    "prepare",
]

OVERLAP_ALLOWANCE = 0.01
"""Siblings overlapping by less than this fraction of their parent's duration may still be sequential (CRISP)."""

_HOST_KEYS = ("hostname", "host.name", "host")


# ------------------------------------------------------------------------------------------------------ the tree
@dataclass(eq=False, slots=True)
class CallNode:
    span: Span
    start: int
    end: int
    parent: CallNode | None = None
    children: list[CallNode] = field(default_factory=list)
    depth: int = 0

    @property
    def call_path(self) -> str:
        """``[a] x->[b] y->...`` from the root to this span (built on demand: long paths are not stored)."""
        names = []
        node: CallNode | None = self
        while node is not None:
            names.append(node.span.name)
            node = node.parent
        return "->".join(reversed(names))

    @property
    def dur(self) -> int:
        return self.end - self.start

    @property
    def error(self) -> bool:
        return self.span.error


@dataclass
class CallTree:
    root: CallNode
    nodes: list[CallNode]  # parents before children
    warnings: list[str]


def _kind(span: Span) -> str:
    return span.attributes.get("span.kind", "").lower()


def _host(span: Span) -> str:
    for key in _HOST_KEYS:
        if key in span.attributes:
            return span.attributes[key]
    return ""


def _remote_call(parent: Span, child: Span, siblings: int) -> bool:
    """A client span with its single server child, or a single child on another host: their clocks may differ."""
    if siblings != 1:
        return False
    if _kind(parent) == "client" and _kind(child) == "server":
        return True
    hp, hc = _host(parent), _host(child)
    return bool(hp and hc and hp != hc)


def prepare(trace: Trace, root: Span | None = None) -> CallTree | None:
    """The synchronous call tree under ``root`` (default: the trace's main root) with clock skew repaired.

    Returns ``None`` for an empty trace. Repairs are counted in the tree's warnings.
    """
    root = root if root is not None else trace.root
    if root is None:
        return None
    top = CallNode(root, root.start_us, root.end_us)
    nodes = [top]
    clipped = dropped = shifted = asynchronous = 0
    stack: list[tuple[CallNode, int]] = [(top, 0)]  # node, time shift applied to its subtree
    while stack:
        node, shift = stack.pop()
        kids = trace.children(node.span.span_id)
        sync = [k for k in kids if not k.follows_from]
        asynchronous += len(kids) - len(sync)
        for k in sync:
            start, end, delta = k.start_us + shift, k.end_us + shift, shift
            if _remote_call(node.span, k, len(sync)) and not (start >= node.start and end <= node.end):
                dur = min(end - start, node.dur)
                new_start = node.start + (node.dur - dur) // 2
                delta += new_start - start
                start, end = new_start, new_start + dur
                shifted += 1
            elif start >= node.start and end <= node.end:
                pass
            elif max(start, node.start) < min(end, node.end):
                start, end = max(start, node.start), min(end, node.end)
                clipped += 1
            else:
                dropped += 1
                continue
            child = CallNode(k, start, end, node, depth=node.depth + 1)
            node.children.append(child)
            nodes.append(child)
            stack.append((child, delta))
    warnings = []
    if clipped:
        warnings.append(f"{clipped} span(s) reaching outside their parent clipped to it (clock skew)")
    if shifted:
        warnings.append(f"{shifted} remote span(s) shifted into their caller's interval (clock skew)")
    if dropped:
        warnings.append(f"{dropped} span(s) wholly outside their parent dropped with their subtrees (clock skew)")
    if asynchronous:
        warnings.append(f"{asynchronous} asynchronous (follows-from) span(s) kept off their parent's critical path")
    return CallTree(top, nodes, warnings)


# --------------------------------------------------------------------------------------------- happens-before
def _by_end_desc(nodes: Iterable[CallNode]) -> list[CallNode]:
    """Latest end first; on equal ends the longer span (earlier start) first, then span id, for determinism."""
    return sorted(nodes, key=lambda n: (-n.end, n.start, n.span.span_id))


def _events_in(nodes: Sequence[CallNode], lo: int, hi: int) -> int:
    return sum((lo <= n.start <= hi) + (lo <= n.end <= hi) for n in nodes)


def _happens_before(parent: CallNode, siblings: Sequence[CallNode], before: CallNode, later: CallNode) -> bool:
    """``before`` ends before ``later`` starts, allowing CRISP's small overlap when nothing else happens in it."""
    if before.end < later.start:
        return True
    if (before.end < later.end and before.start < later.start and parent.dur > 0
            and (before.end - later.start) / parent.dur < OVERLAP_ALLOWANCE):
        return _events_in(siblings, later.start, before.end) == 2
    return False


def _path_children(node: CallNode) -> list[CallNode]:
    """The children of ``node`` on its critical path, latest first."""
    if not node.children:
        return []
    ordered = _by_end_desc(node.children)
    chain = [ordered[0]]
    for c in ordered[1:]:
        if _happens_before(node, ordered, c, chain[-1]):
            chain.append(c)
    return chain


# ------------------------------------------------------------------------------------------------- the result
@dataclass(frozen=True)
class PathSegment:
    """One span on the critical path: its (repaired) interval and its exclusive time on the path."""

    span: Span
    start_us: int
    end_us: int
    exclusive_us: int
    depth: int
    call_path: str

    @property
    def name(self) -> str:
        return self.span.name


@dataclass(frozen=True)
class CriticalPath:
    """The critical path of one trace: segments in time order (a parent before its path children)."""

    trace_id: str
    root: Span
    segments: tuple[PathSegment, ...]
    warnings: tuple[str, ...] = ()

    @property
    def duration_us(self) -> int:
        return self.root.duration_us

    def by_operation(self) -> dict[str, int]:
        """Exclusive path time per ``[service] operation`` (CRISP's ``opTimeExclusive``)."""
        return _sum_by(self.segments, lambda s: s.name)

    def by_call_path(self) -> dict[str, int]:
        """Exclusive path time per call path ``[a] x->[b] y`` (CRISP's call-path profile)."""
        return _sum_by(self.segments, lambda s: s.call_path)

    def by_service(self) -> dict[str, int]:
        return _sum_by(self.segments, lambda s: s.span.service)


def _sum_by(segments: Iterable[PathSegment], key: Callable[[PathSegment], str]) -> dict[str, int]:
    out: dict[str, int] = defaultdict(int)
    for s in segments:
        out[key(s)] += s.exclusive_us
    return dict(out)


def _walk(tree: CallTree) -> tuple[list[tuple[CallNode, int]], dict[int, list[CallNode]]]:
    """Critical-path nodes with their exclusive time, in time order; and each path node's path children."""
    chains: dict[int, list[CallNode]] = {}
    out: list[tuple[CallNode, int]] = []
    stack = [tree.root]
    while stack:
        node = stack.pop()
        chain = _path_children(node)
        chains[id(node)] = chain
        out.append((node, node.dur - sum(c.dur for c in chain)))
        stack.extend(chain)  # latest first onto the stack, so the earliest child is visited next
    return out, chains


def critical_path(trace: Trace, root: Span | None = None) -> CriticalPath | None:
    """The critical path of ``trace`` from ``root`` (default: its main root); ``None`` for an empty trace.

    Examples
    --------
    A parent with three sequential calls: the gaps between them are the parent's exclusive time.

    >>> t = Trace.from_spans([Span("t", "a", None, "S1", "O1", 0, 100), Span("t", "b1", "a", "S2", "O2", 10, 30),
    ...                       Span("t", "b2", "a", "S2", "O2", 40, 50), Span("t", "b3", "a", "S2", "O2", 60, 90)])
    >>> critical_path(t).by_operation()
    {'[S1] O1': 40, '[S2] O2': 60}
    """
    tree = prepare(trace, root)
    if tree is None:
        return None
    walked, _ = _walk(tree)
    segments = tuple(PathSegment(n.span, n.start, n.end, excl, n.depth, n.call_path) for n, excl in walked)
    return CriticalPath(trace.trace_id, tree.root.span, segments, tuple(tree.warnings))


# ------------------------------------------------------------------------------------------- error statistics
@dataclass(frozen=True)
class ErrorStats:
    """CRISP's error-path statistics of one trace (times in µs; counts are (self, propagated, stopped))."""

    total_work_us: int
    work_saved_us: int
    cp_time_saved_us: int
    error_op_exclusive: dict[str, int]
    error_op_inclusive: dict[str, int]
    error_call_path_exclusive: dict[str, int]
    error_counts: dict[str, tuple[int, int, int]]
    no_error_cp: dict[str, int]


@dataclass(frozen=True)
class TraceAnalysis:
    critical_path: CriticalPath
    errors: ErrorStats


def _time_saved(tree: CallTree, own: Callable[[CallNode], int | None], *, waiters: bool = False) -> dict[int, int]:
    """Critical-path time each node loses when some nodes shrink (CRISP's all-series estimate).

    ``own(node)`` is how much ``node`` itself shrinks (its end moves earlier by that much; its children are then
    not looked at), or ``None`` when the node only shrinks as a consequence of its children. With ``waiters``,
    an in-process leaf span that starts before a sibling call and ends when it ends (within 1 % of the parent or
    1 ms; asynchronous instrumentation such as a gateway's request handler) shrinks with that call.
    """
    saved: dict[int, int] = {}
    # children before parents: each node's value depends only on its children's
    for node in reversed(tree.nodes):
        fixed = own(node)
        if fixed is not None:
            saved[id(node)] = max(0, min(fixed, node.dur))
        elif not node.children:
            saved[id(node)] = 0
        else:
            if waiters:
                _follow_waited_calls(node, saved)
            total = sum(_block_saved(node, block, start, overlap, saved) for block, start, overlap in _blocks(node))
            saved[id(node)] = min(total, node.dur)
    return saved


def _follow_waited_calls(parent: CallNode, saved: dict[int, int]) -> None:
    tolerance = max(0.01 * parent.dur, 1000)
    shrinking = [c for c in parent.children if saved.get(id(c), 0) > 0]
    for w in parent.children:
        if w.children or w.span.service != parent.span.service or saved.get(id(w), 0) > 0:
            continue
        for c in shrinking:
            if c is not w and w.start <= c.start and abs(w.end - c.end) <= tolerance:
                saved[id(w)] = max(saved.get(id(w), 0), min(saved[id(c)], w.dur))


def _error_shrink(node: CallNode) -> int | None:
    return node.dur if node.error else None


def cp_time_saved(tree: CallTree, shrink: Mapping[str, int]) -> int:
    """How much earlier the root would end if each span id in ``shrink`` ended that many µs earlier.

    Everything observed to run in series after a shrunk span moves earlier with it (CRISP's "all series"
    model); spans running in parallel cap the gain (above, ``c`` still runs until 40 when ``b`` shrinks to
    nothing), except in-process leaf spans that merely wait for a call (they end when it ends and shrink with
    it). Only the shrunk spans' ancestors are evaluated.

    >>> t = Trace.from_spans([Span("t", "a", None, "web", "GET", 0, 100), Span("t", "b", "a", "db", "q", 10, 50),
    ...                       Span("t", "c", "a", "cache", "get", 20, 40), Span("t", "d", "a", "db", "q", 60, 90)])
    >>> tree = prepare(t)
    >>> cp_time_saved(tree, {"d": 30}), cp_time_saved(tree, {"c": 20}), cp_time_saved(tree, {"b": 40})
    (30, 0, 10)
    """
    if not shrink:
        return 0
    wanted: set[int] = set()
    for n in tree.nodes:
        if n.span.span_id in shrink:
            cur: CallNode | None = n
            while cur is not None and id(cur) not in wanted:
                wanted.add(id(cur))
                cur = cur.parent

    def own(node: CallNode) -> int | None:
        if id(node) not in wanted:
            return 0
        return shrink.get(node.span.span_id)

    return _time_saved(tree, own, waiters=True)[id(tree.root)]


def _blocks(node: CallNode) -> list[tuple[list[CallNode], int, int]]:
    """Children grouped into blocks of transitively overlapping spans, latest block first.

    Each block carries its start and how much it overlaps the next (later) block.
    """
    ordered = sorted(node.children, key=lambda n: (-n.end, n.start, n.span.span_id))
    blocks: list[tuple[list[CallNode], int, int]] = []
    current, first, overlap = [ordered[0]], ordered[0], 0
    for c in ordered[1:]:
        if _happens_before(node, node.children, c, first):
            blocks.append((current, first.start, overlap))
            overlap = max(0, c.end - first.start)
            current, first = [c], c
        else:
            current.append(c)
            if c.start < first.start:
                first = c
    blocks.append((current, first.start, overlap))
    return blocks


def _series_predecessors(block: list[CallNode]) -> dict[int, list[CallNode]]:
    """For each span of a block, the spans that end before it starts and are not implied transitively."""
    ordered = _by_end_desc(block)
    preds: dict[int, list[CallNode]] = {id(ordered[0]): []}
    working = [ordered[0]]
    for s in ordered[1:]:
        finished = []
        for w in working:
            if s.end > w.start:
                continue
            known = preds[id(w)]
            if not known:
                known.append(s)
                continue
            in_series = sum(s.end <= k.start for k in known)
            if in_series == len(known):
                finished.append(w)
            elif in_series == 0:
                known.append(s)
        working = [w for w in working if w not in finished] + [s]
        preds[id(s)] = []
    return preds


def _block_saved(parent: CallNode, block: list[CallNode], start: int, overlap: int, saved: Mapping[int, int]) -> int:
    ordered = _by_end_desc(block)
    last = ordered[0]
    candidates = [last]
    for s in ordered[1:]:
        if _happens_before(parent, ordered, s, last):
            break
        candidates.append(s)
    preds = _series_predecessors(block)
    # how much earlier each span ends once everything before it in series has shrunk; a span's predecessors come
    # after it in latest-end-first order, so the reverse of that order sees them first (no recursion needed)
    shift: dict[int, int] = {}
    for n in reversed(_by_end_desc(block)):
        gap = n.start - start
        latest = start
        for p in preds[id(n)]:
            gap = max(0, min(gap, n.start - p.end))
            latest = max(latest, p.end - shift[id(p)])
        new_end = latest + gap + n.dur - saved[id(n)]
        shift[id(n)] = max(0, n.end - new_end)

    finish = max(c.end - shift[id(c)] for c in candidates)
    return max(0, last.end - finish - overlap)


def _error_path(tree: CallTree, chains: Mapping[int, list[CallNode]]) -> list[CallNode]:
    """Nodes of the error critical path: path nodes (and error-chain nodes) that error or lead to an error."""
    visited: list[tuple[CallNode, bool]] = []
    stack: list[tuple[CallNode, bool]] = [(tree.root, True)]
    while stack:
        node, on_path = stack.pop()
        if not node.error and not on_path:
            continue
        visited.append((node, on_path))
        chain = chains[id(node)] if on_path and id(node) in chains else _path_children(node)
        in_chain = {id(c) for c in chain}
        for c in node.children:
            if id(c) in in_chain:
                stack.append((c, on_path))
            elif node.error:
                stack.append((c, False))
    keep: set[int] = set()
    for node, _ in reversed(visited):  # children were visited after their parents
        if node.error or any(id(c) in keep for c in node.children):
            keep.add(id(node))
    return [n for n, _ in visited if id(n) in keep]


def analyze_trace(trace: Trace, root: Span | None = None) -> TraceAnalysis | None:
    """The critical path and CRISP's error statistics of a trace; ``None`` for an empty trace."""
    tree = prepare(trace, root)
    if tree is None:
        return None
    walked, chains = _walk(tree)
    segments = tuple(PathSegment(n.span, n.start, n.end, excl, n.depth, n.call_path) for n, excl in walked)
    path = CriticalPath(trace.trace_id, tree.root.span, segments, tuple(tree.warnings))
    exclusive = {id(n): excl for n, excl in walked}
    saved = _time_saved(tree, _error_shrink)

    err_nodes = _error_path(tree, chains)
    op_excl: dict[str, int] = defaultdict(int)
    op_incl: dict[str, int] = defaultdict(int)
    cp_excl: dict[str, int] = defaultdict(int)
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for n in err_nodes:
        op_incl[n.span.name] += saved[id(n)]
        child_error = any(c.error for c in n.children)
        if n.error:
            excl = exclusive[id(n)] if id(n) in exclusive else n.dur - sum(c.dur for c in _path_children(n))
            op_excl[n.span.name] += excl
            cp_excl[n.call_path] += excl
            counts[n.call_path][1 if child_error else 0] += 1
        elif child_error:
            counts[n.call_path][2] += 1
    errors = ErrorStats(
        total_work_us=sum(n.dur for n in tree.nodes),
        work_saved_us=sum(n.dur for n in tree.nodes if n.error),
        cp_time_saved_us=saved[id(tree.root)],
        error_op_exclusive=dict(op_excl),
        error_op_inclusive=dict(op_incl),
        error_call_path_exclusive=dict(cp_excl),
        error_counts={k: (v[0], v[1], v[2]) for k, v in counts.items()},
        no_error_cp=_no_error_path(tree, saved),
    )
    return TraceAnalysis(path, errors)


def _no_error_path(tree: CallTree, saved: Mapping[int, int]) -> dict[str, int]:
    """Exclusive path time per operation once erroring spans are gone and their callers shrunk accordingly."""
    out: dict[str, int] = defaultdict(int)
    stack = [tree.root]
    while stack:
        node = stack.pop()
        if node.error:
            continue
        kept = [c for c in node.children if not c.error]
        chain: list[CallNode] = []
        if kept:
            ordered = _by_end_desc(kept)
            chain = [ordered[0]]
            for c in ordered[1:]:
                if _happens_before(node, ordered, c, chain[-1]):
                    chain.append(c)
        excl = (node.dur - saved[id(node)]) - sum(c.dur - saved[id(c)] for c in chain)
        if excl > 0:
            out[node.span.name] += excl
        stack.extend(chain)
    return dict(out)


# ------------------------------------------------------------------------------------------------ aggregation
@dataclass(frozen=True)
class PathTotal:
    """Critical-path time of one operation (or service) summed over traces."""

    key: str
    total_us: int
    traces: int
    share: float  # of all critical-path time
    example_trace_ids: tuple[str, ...]


def aggregate_critical_paths(paths: Iterable[CriticalPath], *, by: str = "operation",
                             examples: int = 3) -> list[PathTotal]:
    """Critical-path time per ``[service] operation`` (``by="operation"``) or service, largest first."""
    totals: dict[str, int] = defaultdict(int)
    n_traces: dict[str, int] = defaultdict(int)
    worst: dict[str, list[tuple[int, str]]] = defaultdict(list)  # the traces where the key took longest
    grand = 0
    for p in paths:
        parts = p.by_operation() if by == "operation" else p.by_service()
        for k, v in parts.items():
            totals[k] += v
            grand += v
            n_traces[k] += 1
            worst[k] = sorted([*worst[k], (-v, p.trace_id)])[:examples]
    out = [PathTotal(k, v, n_traces[k], v / grand if grand else 0.0, tuple(t for _, t in worst[k]))
           for k, v in totals.items()]
    return sorted(out, key=lambda t: (-t.total_us, t.key))
