"""Workflow advice from traces: what to change on the request path, with the time it would save.

:func:`advise` looks at a set of traces and returns :class:`Advice` items, largest total gain first:

- **parallelize**: a caller makes calls to *different* services one after the other, each starting right after
  the previous one ended (gap <= ``sequential_gap_ms`` or ``gap_fraction`` of the caller's duration), so no
  work of the caller between them suggests it needed the earlier result. Running them together would shorten
  the run from its span to its longest call; the gain is what that saves on the trace's critical path (CRISP's
  all-series model, :func:`~opsmind.traces.critical_path.cp_time_saved`), which is 0 when something else in
  parallel bounds the caller. Confidence is ``high`` when the same calls were seen overlapping or in the other
  order in some trace (they cannot depend on each other), ``low`` when the first call looks like a write
  (POST/PUT/PATCH/DELETE, insert/update/delete/create/save...) that the second may need, else ``medium``;
- **timeout**: per ``(caller service, callee operation)`` with at least ``min_calls`` calls, hung calls are
  told apart from the latency distribution's body (log-scale Tukey fence: above ``q3 * (q3 / q1) ** 3`` and
  at least 10 x the median); the suggested timeout is the body's ``timeout_quantile`` (p99.9) x
  ``timeout_margin``. When hung calls ran longer than that, the gain is the critical-path time saved had they
  been cut at the timeout (slow calls inside the body are left alone);
- **retry_budget**: per edge, the error rate of calls and the retries seen (a call to the same operation right
  after a failed one, under the same caller). Budget = 2 x error rate, between 1 % and ``max_retry_budget`` of
  requests. Advice when retries exceed the budget (retry amplification; gain: critical-path time of the failed
  attempts) or when the callee fails so often that retries cannot help; and when errors are transient but
  never retried (gain: the share of failed requests a single retry would recover, if failures are independent);
- **cache**: the same call (same callee operation and arguments: attributes except volatile ones such as pod,
  host, ports, thread and request ids) made ``cache_min_repeats`` or more times under one parent span; the gain
  is the critical-path time of the repeats, as if served from a cache;
- **no_change**: when none of the above saves at least ``min_gain_ms`` per affected trace.

Every item carries its estimated gain (mean ms per affected trace and total over the traces), the number of
traces affected, example trace ids (largest gain first) and the evidence behind it.
"""

from __future__ import annotations

import itertools
import math
import re
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from opsmind.core.spans import Span, Trace
from opsmind.traces.critical_path import CallNode, CallTree, cp_time_saved, prepare
from opsmind.traces.graph import callee_of, calls

__all__ = ["Advice", "AdviceKind", "AdviceSettings", "TimeoutSuggestion", "advise", "suggest_timeouts"]

_ARGS = " with "  # separates a call's target from its arguments in a call identity
AdviceKind = Literal["parallelize", "timeout", "retry_budget", "cache", "no_change"]

_WRITE_RE = re.compile(r"\b(post|put|patch|delete|insert|update|upsert|create|save|write|set|remove|add)\b",
                       re.IGNORECASE)
_VOLATILE = {"pod", "hostname", "host.name", "ip", "k8s.pod.name", "service.instance.id", "thread.id",
             "thread.name", "net.sock.peer.port", "net.peer.port", "net.host.port", "net.sock.host.port",
             "peer.port", "span.kind", "component", "otel.library.name", "otel.scope.name", "internal.span.format",
             "sampler.type", "sampler.param", "request.id", "x-request-id", "http.request_id", "error",
             "otel.status_code", "http.status_code", "http.response.status_code", "duration", "start_time", "end_time"}


class AdviceSettings(BaseModel):
    """Thresholds of the workflow advice (field descriptions are the CLI's help)."""

    model_config = ConfigDict(extra="forbid")

    min_gain_ms: float = Field(1.0, ge=0, description="Drop advice saving less than this per affected trace (ms).")
    sequential_gap_ms: float = Field(
        2.0, ge=0, description="Largest gap between two calls for the second to count as starting right after the "
        "first (ms).")
    gap_fraction: float = Field(
        0.02, ge=0, le=1, description="... or this fraction of the caller's duration, whichever is larger.")
    timeout_quantile: float = Field(0.999, gt=0.5, lt=1, description="Latency quantile the timeout is based on.")
    timeout_margin: float = Field(1.5, ge=1, description="Timeout = quantile x this margin.")
    min_calls: int = Field(20, ge=2, description="Calls an edge needs before a timeout or retry budget is "
                           "suggested.")
    max_retry_budget: float = Field(0.2, gt=0, le=1, description="Largest retry budget (retries / requests).")
    cache_min_repeats: int = Field(2, ge=2, description="Identical calls under one parent that make a caching "
                                   "candidate.")
    examples: int = Field(3, ge=1, description="Example trace ids per advice item.")


@dataclass(frozen=True)
class Advice:
    """One recommendation with its estimated gain and the traces that show it."""

    kind: AdviceKind
    target: str
    summary: str
    gain_ms_per_trace: float
    gain_ms_total: float
    traces_affected: int
    example_trace_ids: tuple[str, ...]
    evidence: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "target": self.target, "summary": self.summary,
                "gain_ms_per_trace": round(self.gain_ms_per_trace, 3), "gain_ms_total": round(self.gain_ms_total, 3),
                "traces_affected": self.traces_affected, "example_trace_ids": list(self.example_trace_ids),
                "evidence": self.evidence}


class _Trees:
    """Traces with their call trees, built again on each pass so that no more than one is held at a time."""

    def __init__(self, traces: Sequence[Trace]) -> None:
        self.traces = [t for t in traces if t.root is not None]

    def __iter__(self) -> Iterator[tuple[Trace, CallTree]]:
        for t in self.traces:
            tree = prepare(t)
            if tree is not None:
                yield t, tree

    def __len__(self) -> int:
        return len(self.traces)


class _Gains:
    """Critical-path gains of one advice key, per trace."""

    def __init__(self) -> None:
        self.per_trace: dict[str, float] = defaultdict(float)
        self.seen: dict[str, int] = defaultdict(int)

    def add(self, trace_id: str, gain_us: int) -> None:
        self.per_trace[trace_id] += gain_us / 1000.0
        self.seen[trace_id] += 1

    def summary(self, examples: int) -> tuple[float, float, int, tuple[str, ...]]:
        n = len(self.seen)
        total = sum(self.per_trace.values())
        best = sorted(self.per_trace.items(), key=lambda kv: (-kv[1], kv[0]))[:examples]
        return (total / n if n else 0.0), total, n, tuple(t for t, _ in best)


def _ms(us: float) -> str:
    ms = us / 1000.0
    return f"{ms:.0f} ms" if ms >= 100 else f"{ms:.3g} ms"


# ------------------------------------------------------------------------------------------------ call targets
def _target(trace: Trace, parent: CallNode, child: CallNode) -> str | None:
    """The remote operation a child span stands for, ``[service] operation``; ``None`` for in-process work."""
    span = child.span
    if span.service != parent.span.service:
        return span.name
    remote = callee_of(trace, span)
    if remote is not None:
        return remote.name
    for key in ("peer.service", "db.system", "messaging.system"):
        if key in span.attributes:
            return f"[{span.attributes[key]}] {span.operation}"
    return None


def _service_of(target: str) -> str:
    return target[1:target.index("]")] if target.startswith("[") and "]" in target else target


def _looks_like_write(trace: Trace, node: CallNode) -> bool:
    text = " ".join([node.span.operation, node.span.attributes.get("http.method", ""),
                     node.span.attributes.get("http.request.method", ""),
                     node.span.attributes.get("db.operation", ""), node.span.attributes.get("db.statement", "")[:40]])
    remote = callee_of(trace, node.span)
    if remote is not None:
        text += " " + remote.operation
    return bool(_WRITE_RE.search(text))


# ------------------------------------------------------------------------------------------------- parallelize
def _sequential(parent: CallNode, a: CallNode, b: CallNode, s: AdviceSettings) -> bool:
    tolerance = max(s.sequential_gap_ms * 1000.0, s.gap_fraction * parent.dur)
    overlap_ok = 0.01 * parent.dur
    return b.start >= a.end - overlap_ok and b.start - a.end <= tolerance


def _runs(trace: Trace, parent: CallNode, s: AdviceSettings) -> list[list[tuple[CallNode, str]]]:
    kids = sorted(parent.children, key=lambda n: (n.start, n.end))
    out: list[list[tuple[CallNode, str]]] = []
    run: list[tuple[CallNode, str]] = []

    def close() -> None:
        if len(run) >= 2:
            out.append(list(run))
        run.clear()

    for k in kids:
        target = _target(trace, parent, k)
        if target is None:
            close()
            continue
        services = {_service_of(t) for _, t in run}
        if run and _sequential(parent, run[-1][0], k, s) and _service_of(target) not in services:
            run.append((k, target))
        else:
            close()
            run.append((k, target))
    close()
    return out


def _parallel_gain(parent: CallNode, run: list[tuple[CallNode, str]]) -> int:
    """How much earlier ``parent`` ends if the run's calls start together (other children may still bound it)."""
    members = {id(n) for n, _ in run}
    first, last = run[0][0].start, run[-1][0].end
    new_end = first + max(n.dur for n, _ in run)
    blocking = [c.end for c in parent.children if id(c) not in members and c.start < last and c.end > first]
    bound = min(last, max([new_end, *blocking]))
    return max(0, last - bound)


def _pair_orders(trees: Iterable[tuple[Trace, CallTree]]) -> dict[tuple[str, str, str], set[str]]:
    """For each (caller operation, target a, target b): how they were seen: 'ab', 'ba' or 'overlap'."""
    seen: dict[tuple[str, str, str], set[str]] = defaultdict(set)
    for trace, tree in trees:
        for parent in tree.nodes:
            if len(parent.children) < 2 or len(parent.children) > 50:
                continue
            kids = [(k, _target(trace, parent, k)) for k in parent.children]
            named = [(k, t) for k, t in kids if t is not None]
            for i, (a, ta) in enumerate(named):
                for b, tb in named[i + 1:]:
                    if ta == tb or ta is None or tb is None:
                        continue
                    (x, tx), (y, ty) = sorted([(a, ta), (b, tb)], key=lambda p: p[1])
                    if x.end <= y.start:
                        order = "ab"
                    elif y.end <= x.start:
                        order = "ba"
                    else:
                        order = "overlap"
                    seen[(parent.span.name, tx, ty)].add(order)
    return seen


def _advise_parallel(trees: _Trees, s: AdviceSettings) -> list[Advice]:
    gains: dict[tuple[str, tuple[str, ...]], _Gains] = defaultdict(_Gains)
    local: dict[tuple[str, tuple[str, ...]], list[int]] = defaultdict(list)
    writes: dict[tuple[str, tuple[str, ...]], int] = defaultdict(int)
    for trace, tree in trees:
        for parent in tree.nodes:
            if len(parent.children) < 2:
                continue
            for run in _runs(trace, parent, s):
                key = (parent.span.name, tuple(t for _, t in run))
                saving = _parallel_gain(parent, run)
                gains[key].add(trace.trace_id, cp_time_saved(tree, {parent.span.span_id: saving}) if saving else 0)
                local[key].append(saving)
                writes[key] += any(_looks_like_write(trace, n) for n, _ in run[:-1])
    orders = _pair_orders(trees) if gains else {}
    out = []
    for key, g in gains.items():
        per_trace, total, n, examples = g.summary(s.examples)
        if per_trace < s.min_gain_ms:
            continue
        caller, targets = key
        independent = []
        for i, a in enumerate(targets):
            for b in targets[i + 1:]:
                x, y = sorted([a, b])
                seen = orders.get((caller, x, y), set())
                if "overlap" in seen or {"ab", "ba"} <= seen:
                    independent.append(f"{a} / {b}")
        confidence = "high" if independent else ("low" if writes[key] else "medium")
        calls_text = ", then ".join(targets)
        out.append(Advice(
            "parallelize", caller,
            f"{caller} calls {calls_text} one after the other; issuing them concurrently saves "
            f"{per_trace:.3g} ms of critical path per trace ({confidence} confidence)",
            per_trace, total, n, examples,
            {"calls": list(targets), "confidence": confidence,
             "caller_time_saved_ms_mean": round(float(np.mean(local[key])) / 1000.0, 3),
             "seen_concurrently_or_reordered": independent,
             "first_calls_look_like_writes_in_traces": writes[key]}))
    return out


# ------------------------------------------------------------------------------------------------------ timeouts
@dataclass(frozen=True)
class TimeoutSuggestion:
    """A timeout for the calls from ``caller`` to ``callee`` derived from their latency distribution."""

    caller: str
    callee: str
    calls: int
    timeout_ms: float
    body_quantile_ms: float
    hung_calls: int
    slower_than_timeout: int
    max_ms: float


def _round_up(ms: float) -> float:
    """Up to two significant digits (12.3 -> 13, 0.123 -> 0.13, 1234 -> 1300)."""
    if ms <= 0:
        return 0.0
    step = 10.0 ** (math.floor(math.log10(ms)) - 1)
    return round(math.ceil(ms / step - 1e-9) * step, 6)


_EdgeCall = tuple[Trace, Span, Span, Span]  # trace, caller span, client span, callee span


def _edge_calls(traces: Iterable[Trace]) -> dict[tuple[str, str], list[_EdgeCall]]:
    out: dict[tuple[str, str], list[_EdgeCall]] = defaultdict(list)
    for trace in traces:
        for c in calls(trace):
            out[(c.caller.service, c.callee.name)].append((trace, c.caller, c.client, c.callee))
    return out


def _saved(trace: Trace, shrink: dict[str, int]) -> int:
    tree = prepare(trace)
    return cp_time_saved(tree, shrink) if tree is not None else 0


def suggest_timeouts(traces: Sequence[Trace], settings: AdviceSettings | None = None) -> list[TimeoutSuggestion]:
    """A timeout per ``(caller service, callee operation)`` with at least ``min_calls`` calls."""
    s = settings or AdviceSettings()
    return [sug for sug, _ in _timeouts(_edge_calls(traces), s)]


def _timeouts(edges: dict[tuple[str, str], list[_EdgeCall]],
              s: AdviceSettings) -> list[tuple[TimeoutSuggestion, list[tuple[Trace, Span]]]]:
    out = []
    for (caller, callee), items in sorted(edges.items()):
        if len(items) < s.min_calls:
            continue
        lat = np.array([client.duration_us for _, _, client, _ in items], dtype=np.float64)
        q1, median, q3 = np.quantile(lat, [0.25, 0.5, 0.75])
        fence = max(q3 * (q3 / q1) ** 3 if q1 > 0 else math.inf, 10.0 * median)
        body = lat[lat <= fence]
        base = float(np.quantile(body, s.timeout_quantile)) if body.size else float(q3)
        timeout_us = _round_up(base * s.timeout_margin / 1000.0) * 1000.0
        slow = [(t, client) for t, _, client, _ in items
                if client.duration_us > timeout_us and client.duration_us > fence]
        out.append((TimeoutSuggestion(caller, callee, len(items), timeout_us / 1000.0, base / 1000.0,
                                      int((lat > fence).sum()), len(slow), float(lat.max()) / 1000.0), slow))
    return out


def _advise_timeouts(edges: dict[tuple[str, str], list[_EdgeCall]], s: AdviceSettings) -> list[Advice]:
    out = []
    for sug, slow in _timeouts(edges, s):
        if not slow:
            continue
        g = _Gains()
        for trace, client in slow:
            cut = int(client.duration_us - sug.timeout_ms * 1000)
            g.add(trace.trace_id, _saved(trace, {client.span_id: cut}))
        per_trace, total, n, examples = g.summary(s.examples)
        if per_trace < s.min_gain_ms:
            continue
        q = f"p{s.timeout_quantile * 100:g}"
        out.append(Advice(
            "timeout", f"{sug.caller} -> {sug.callee}",
            f"calls from {sug.caller} to {sug.callee} need a timeout of about {sug.timeout_ms:g} ms "
            f"({q} {sug.body_quantile_ms:.3g} ms x {s.timeout_margin:g}): {len(slow)} of {sug.calls} hung "
            f"(up to {sug.max_ms:.0f} ms); cutting them saves {per_trace:.3g} ms of critical path per "
            f"affected trace", per_trace, total, n, examples,
            {"timeout_ms": sug.timeout_ms, "quantile": s.timeout_quantile,
             "quantile_ms": round(sug.body_quantile_ms, 3), "margin": s.timeout_margin, "calls": sug.calls,
             "slower_than_timeout": sug.slower_than_timeout, "hung_calls": sug.hung_calls,
             "max_ms": round(sug.max_ms, 3)}))
    return out


# ------------------------------------------------------------------------------------------------ retry budgets
def _advise_retries(edges: dict[tuple[str, str], list[_EdgeCall]], s: AdviceSettings) -> list[Advice]:
    out = []
    for (caller, callee), items in sorted(edges.items()):
        if len(items) < s.min_calls:
            continue
        errors = sum(client.error or remote.error for _, _, client, remote in items)
        # retries: a call right after a failed call to the same operation under the same caller span
        by_caller: dict[tuple[str, str], list[tuple[Trace, Span, Span]]] = defaultdict(list)
        for trace, caller_span, client, remote in items:
            by_caller[(trace.trace_id, caller_span.span_id)].append((trace, client, remote))
        retries = 0
        failed_attempts: dict[str, tuple[Trace, dict[str, int]]] = {}
        for group in by_caller.values():
            group.sort(key=lambda x: x[1].start_us)
            for prev, _ in itertools.pairwise(group):
                if prev[1].error or prev[2].error:
                    retries += 1
                    entry = failed_attempts.setdefault(prev[0].trace_id, (prev[0], {}))
                    entry[1][prev[1].span_id] = prev[1].duration_us
        wasted = _Gains()
        for trace_id, (trace, shrink) in failed_attempts.items():
            wasted.add(trace_id, _saved(trace, shrink))
        requests = len(items) - retries
        rate = errors / len(items)
        budget = min(s.max_retry_budget, max(0.01, 2.0 * rate))
        ratio = retries / requests if requests else 0.0
        evidence = {"calls": len(items), "requests": requests, "retries": retries, "error_rate": round(rate, 4),
                    "retry_ratio": round(ratio, 4), "budget": round(budget, 4)}
        target = f"{caller} -> {callee}"
        if retries and (ratio > budget or rate >= 0.5):
            per_trace, total, n, examples = wasted.summary(s.examples)
            why = (f"{callee} fails {rate:.0%} of calls, so retries mostly fail again" if rate >= 0.5 else
                   f"retries are {ratio:.0%} of requests")
            out.append(Advice(
                "retry_budget", target,
                f"cap retries from {caller} to {callee} at a budget of {budget:.0%} of requests: {why}; the failed "
                f"attempts cost {per_trace:.3g} ms of critical path per affected trace", per_trace, total, n,
                examples, evidence))
        elif errors and not retries and rate < s.max_retry_budget:
            failed = _Gains()
            for trace, _, client, remote in items:
                if client.error or remote.error:
                    failed.add(trace.trace_id, 0)
            _, _, n, examples = failed.summary(s.examples)
            recovered = rate * (1 - rate)
            evidence["requests_recovered_share"] = round(recovered, 5)
            out.append(Advice(
                "retry_budget", target,
                f"{callee} fails {rate:.2%} of calls from {caller} and they are not retried: one retry within a "
                f"budget of {budget:.0%} of requests would recover about {recovered:.2%} of requests if failures "
                f"are independent", 0.0, 0.0, n, examples, evidence))
    return out


# ------------------------------------------------------------------------------------------------------ caching
def _call_identity(trace: Trace, parent: CallNode, child: CallNode) -> str | None:
    target = _target(trace, parent, child)
    if target is None:
        return None
    spans = [child.span]
    remote = callee_of(trace, child.span)
    if remote is not None:
        spans.append(remote)
    args = sorted({(k, v) for sp in spans for k, v in sp.attributes.items() if k.lower() not in _VOLATILE})
    return target + (_ARGS + ";".join(f"{k}={v}" for k, v in args) if args else "")


def _advise_cache(trees: _Trees, s: AdviceSettings) -> list[Advice]:
    gains: dict[tuple[str, str], _Gains] = defaultdict(_Gains)
    repeats: dict[tuple[str, str], list[int]] = defaultdict(list)
    for trace, tree in trees:
        for parent in tree.nodes:
            if len(parent.children) < s.cache_min_repeats:
                continue
            groups: dict[str, list[CallNode]] = defaultdict(list)
            for c in parent.children:
                ident = _call_identity(trace, parent, c)
                if ident is not None:
                    groups[ident].append(c)
            for ident, members in groups.items():
                if len(members) < s.cache_min_repeats:
                    continue
                members.sort(key=lambda n: n.start)
                shrink = {m.span.span_id: m.dur for m in members[1:]}
                key = (parent.span.name, ident)
                gains[key].add(trace.trace_id, cp_time_saved(tree, shrink))
                repeats[key].append(len(members))
    out = []
    for (caller, ident), g in gains.items():
        per_trace, total, n, examples = g.summary(s.examples)
        if per_trace < s.min_gain_ms:
            continue
        mean_calls = float(np.mean(repeats[(caller, ident)]))
        with_args = _ARGS in ident
        caveat = "" if with_args else " (the spans record no call arguments: check the calls are identical)"
        out.append(Advice(
            "cache", caller,
            f"{caller} makes the same call {ident} {mean_calls:.3g} times per request on average; caching or "
            f"batching it saves {per_trace:.3g} ms of critical path per affected trace{caveat}", per_trace, total,
            n, examples, {"call": ident, "mean_calls_per_parent": round(mean_calls, 3),
                          "arguments_recorded": with_args,
                          "calls_saved": int(sum(repeats[(caller, ident)]) - len(repeats[(caller, ident)]))}))
    return out


# ------------------------------------------------------------------------------------------------------- entry
def advise(traces: Sequence[Trace], settings: AdviceSettings | None = None) -> list[Advice]:
    """Workflow advice for a set of traces, largest total gain first; a single ``no_change`` item if none helps.

    Examples
    --------
    A checkout that calls pricing and then shipping, each right after the other:

    >>> spans = lambda i: [Span(f"t{i}", "r", None, "checkout", "POST /checkout", 0, 210_000),
    ...                    Span(f"t{i}", "p", "r", "pricing", "GET /price", 5_000, 105_000),
    ...                    Span(f"t{i}", "s", "r", "shipping", "GET /quote", 106_000, 206_000)]
    >>> items = advise([Trace.from_spans(spans(i)) for i in range(3)])
    >>> [(a.kind, a.gain_ms_per_trace, a.traces_affected) for a in items]
    [('parallelize', 101.0, 3)]
    """
    s = settings or AdviceSettings()
    trees = _Trees(traces)
    edges = _edge_calls(trees.traces)
    out = (_advise_parallel(trees, s) + _advise_timeouts(edges, s) + _advise_retries(edges, s)
           + _advise_cache(trees, s))
    out.sort(key=lambda a: (-a.gain_ms_total, a.kind, a.target))
    if not out:
        slowest = sorted(trees.traces, key=lambda t: (-t.duration_us, t.trace_id))[: s.examples]
        out.append(Advice(
            "no_change", "all",
            f"no change needed: in {len(trees)} trace(s) there are no independent sequential calls, no calls "
            f"beyond a latency-based timeout, no retry problems and no repeated identical calls that would save "
            f"{s.min_gain_ms:g} ms or more", 0.0, 0.0, len(trees), tuple(t.trace_id for t in slowest),
            {"traces": len(trees)}))
    return out
