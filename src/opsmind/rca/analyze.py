"""Root-cause analysis of one incident: onset, then services ranked by robust, topology-aware deviation scores.

Steps (each one's numbers end up in the evidence of the result):

1. **Onset** (:func:`~opsmind.rca.onset.detect_onset`): the last normal sample before a sustained change of the
   frontend SLIs near ``at``; else, with ``log_onset``, the change point of the log-template stream
   (:func:`~opsmind.rca.onset.event_onset`); else ``at`` itself.
2. **Windows**: normal = ``(onset - baseline_s, onset]`` (for spans and log lines, plus any known fault-free
   ones), anomalous = ``(onset, onset + window_s]``.
3. **Indicators**, each a robust z (deviation in units of the normal window's robust spread):
   - every metric of every service (:func:`~opsmind.rca.scoring.deviations`: median / IQR, scale floor,
     sustained over two samples);
   - per-edge call latencies, attributed to the *callee*: the latency its callers measure and, when the callee's
     own measurement is known too, the difference (network and queueing in front of the callee);
   - trace signals per service (self latency, self errors, network; :func:`opsmind.traces.ranking.rank_services`)
     between the spans before and after the onset;
   - log-template frequency changes per service (:func:`~opsmind.rca.logs.score_logs`).
4. **Weights**: a service's client-side latency measures its callees, so it does not count for the service
   (``client_latency_weight``); a node-level deviation shared by the services on one node is divided among them;
   with a call graph, a latency or error deviation that a callee shows at least as strongly is mostly
   propagated (weight ``own / (own + strongest callee)``), and so is a traffic change that a caller shows; a
   load increase that a service's callers show as well (relatively, as fixed call ratios pass it on) came from
   them, and so did what it does to the service (saturation latency and errors, CPU and memory use): the cause
   is where the load entered.
5. **Ranking**: a service's score is its strongest weighted indicator; indicators are listed strongest first.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from opsmind.core import ConfigError, FloatArray, Frame
from opsmind.rca.graph import CallGraph, calls_from_spans
from opsmind.rca.logs import score_logs
from opsmind.rca.model import Case, Cause, Evidence, Indicator, LogLines, RcaResult, TimeLike, to_epoch_s
from opsmind.rca.onset import detect_onset, disturbed_times, event_onset
from opsmind.rca.scoring import KIND_CAUSE, KIND_LATENCY, KIND_TRAFFIC, deviations, metric_kind
from opsmind.rca.settings import RcaSettings

__all__ = ["analyze", "metric_indicators"]

_Scored = dict[str, list[tuple[Indicator, str]]]  # service -> [(indicator, kind)]


def analyze(metrics: Mapping[str, Frame] | Case, at: TimeLike, *, topology: object | None = None,
            traces: Sequence[Any] | None = None, logs: LogLines | None = None,
            slis: Frame | None = None, settings: RcaSettings | None = None) -> RcaResult:
    """Rank the services that most likely caused the incident noticed at ``at``.

    Parameters
    ----------
    metrics
        One frame per service, or a loaded :class:`~opsmind.rca.model.Case` (whose other fields are then used;
        the keyword arguments below add to or replace them).
    at
        When the incident was noticed or injected: Unix seconds, a datetime or an ISO 8601 string.
    topology
        Call edges: a :class:`~opsmind.rca.graph.CallGraph`, ``(caller, callee)`` pairs or an object with
        ``.calls`` (e.g. :class:`opsmind.sim.Topology`). Without it, edges are derived from the spans, if any.
    traces
        Spans (:class:`opsmind.core.spans.Span`, or a :class:`opsmind.sources.traces.SpanBatch`) around the
        incident; those before the onset are the baseline.
    logs
        Log lines around the incident (:class:`~opsmind.rca.model.LogLines`).
    slis
        Frontend SLIs for the onset; default: the case's, else the entry service's latency and error metrics.

    Examples
    --------
    >>> from opsmind.sim import Incident, simulate
    >>> sim = simulate(hours=2.0, step_s=60.0, seed=3,
    ...                incidents=[Incident("cpu_hog", "payment", start_s=1704067200 + 5400, duration_s=600,
    ...                                    magnitude=0.8)])
    >>> result = analyze(sim.frames, at=1704067200 + 5400, topology=sim.topology)
    >>> result.ranking[0].service, result.ranking[0].indicators[0].metric
    ('payment', 'cpu_cores')
    """
    s = settings or RcaSettings()
    case = metrics if isinstance(metrics, Case) else Case(metrics=dict(metrics))
    if traces is not None:
        case = replace(case, spans=list(getattr(traces, "spans", traces)))  # a SpanBatch or spans
    if logs is not None:
        case = replace(case, logs=logs)
    if slis is not None:
        case = replace(case, slis=slis)
    at_s = to_epoch_s(at)
    notes: list[str] = list(case.notes)

    graph = CallGraph.from_edges(case.calls)
    if topology is not None:
        graph = graph.union(CallGraph.coerce(topology))
    if case.spans and s.use_traces:
        derived = calls_from_spans([*case.spans, *(case.baseline_spans or ())])
        if not graph.edges:
            graph = derived
        elif derived.edges - graph.edges:
            graph = graph.union(derived)

    sli_frame = case.slis if case.slis is not None else _default_slis(case.metrics, graph)
    onset = detect_onset(sli_frame, at_s, s)
    if not onset.found and s.log_onset and case.logs is not None and s.use_logs and len(case.logs):
        keys = np.char.add(np.char.add(case.logs.services.astype(str), "|"), case.logs.templates.astype(str))
        from_logs = event_onset(case.logs.seconds(), keys, at_s, s)
        notes.append(f"onset: {onset.detail}")
        onset = from_logs
    if not onset.found:
        notes.append(f"onset: {onset.detail}")
    t0 = onset.time_s
    normal = (t0 - s.baseline_s, t0)
    anomalous = (t0, t0 + s.window_s)

    disturbed = disturbed_times(sli_frame, at_s, s) if s.clean_baseline else None
    if disturbed is not None and disturbed.size:
        disturbed = disturbed[disturbed <= t0]
    scored: _Scored = defaultdict(list)
    for svc, frame in case.metrics.items():
        for ind, kind in metric_indicators(frame, normal, anomalous, s, notes=notes, service=svc,
                                           disturbed=disturbed):
            scored[svc].append((ind, kind))
    if case.slis is not None and s.sli_to_entry:
        entries = _entries(graph, set(case.metrics))
        for ind, kind in metric_indicators(case.slis, normal, anomalous, s, service="SLI", disturbed=disturbed):
            for svc in entries:
                ev = replace(ind.evidence, detail=_join(ind.evidence.detail, "frontend SLI of the entry service"))
                scored[svc].append((Indicator(f"SLI {ind.metric}", ind.score, ev), kind))
    _edge_indicators(case.edges, normal, anomalous, s, scored, notes, disturbed)
    if case.spans and s.use_traces:
        _trace_indicators(case.spans, case.baseline_spans, normal, anomalous, scored, notes,
                          s.trace_min_samples)
    if case.logs is not None and s.use_logs and len(case.logs):
        by_svc, log_notes = score_logs(case.logs, normal, anomalous, case.baseline_logs, top=s.top_indicators)
        notes += log_notes
        for svc, inds in by_svc.items():
            scored[svc] += [(i, "logs") for i in inds]

    if s.share_node_metrics:
        _share_node(case.metrics, scored, normal)
    if s.propagation and graph.edges:
        _inherited_load(scored, graph, s.onset_z)
        _propagate(scored, graph)

    services = set(scored) | set(case.metrics) | graph.services
    missing = sorted(sv for sv in services if not scored.get(sv))
    if missing:
        shown = ", ".join(missing[:8]) + (f" and {len(missing) - 8} more" if len(missing) > 8 else "")
        notes.append(f"no usable data for {len(missing)} service(s) (ranked last): {shown}")
    on_path = graph.services if (s.off_path_last and graph.edges) else services
    off = sorted(sv for sv in services if sv not in on_path and scored.get(sv))
    if off:
        notes.append(f"{len(off)} service(s) not on any call path of the graph ranked after those on one: "
                     + ", ".join(off[:8]) + (f" and {len(off) - 8} more" if len(off) > 8 else ""))
    causes = []
    for svc in services:
        items = scored.get(svc, [])
        score = max((i.score for i, _ in items), default=0.0)
        # a significant cause-type deviation (a resource, the network, a log statement) explains the service's
        # latency and traffic symptoms, so it is listed first
        inds = [i for i, _ in sorted(items, key=lambda ik: (not (ik[1] in KIND_CAUSE and ik[0].score > s.onset_z),
                                                              -ik[0].score, ik[0].metric))]
        causes.append(Cause(svc, float(score), tuple(inds[: s.top_indicators])))
    causes.sort(key=lambda c: (c.service not in on_path, -c.score, -_second(c), c.service))
    return RcaResult(onset=onset, ranking=tuple(causes), notes=tuple(dict.fromkeys(notes)))


def _second(c: Cause) -> float:
    return c.indicators[1].score if len(c.indicators) > 1 else 0.0


def _window_rows(frame: Frame, window: tuple[float, float]) -> np.ndarray:
    t = frame.seconds()
    return (t > window[0]) & (t <= window[1])


def metric_indicators(frame: Frame, normal: tuple[float, float], anomalous: tuple[float, float],
                      settings: RcaSettings, *, notes: list[str] | None = None, service: str = "",
                      disturbed: np.ndarray | None = None,
                      floor: FloatArray | None = None) -> list[tuple[Indicator, str]]:
    """``(indicator, kind)`` for every column of ``frame`` between the two windows (``(start, end]`` seconds).

    ``disturbed`` are sorted times (seconds) to leave out of the normal window if enough samples remain;
    ``floor`` is an absolute floor of each column's spread.
    """
    s = settings
    n_rows = _window_rows(frame, normal)
    a_rows = _window_rows(frame, anomalous)
    if disturbed is not None and disturbed.size and n_rows.any():
        t = frame.seconds()
        step = float(np.median(np.diff(t))) if len(t) > 1 else 0.0
        pos = np.clip(np.searchsorted(disturbed, t), 1, disturbed.size) if disturbed.size > 1 else np.ones(
            len(t), dtype=np.int64)
        near = np.minimum(np.abs(t - disturbed[np.minimum(pos, disturbed.size - 1)]), np.abs(t - disturbed[pos - 1]))
        clean = n_rows & ~(near <= 0.5 * step)
        if int(clean.sum()) >= max(s.min_normal, int(0.5 * n_rows.sum())):
            n_rows = clean
    where = service or frame.name
    if not a_rows.any():
        if notes is not None:
            notes.append(f"{where}: no metric samples after the onset")
        return []
    if int(n_rows.sum()) < s.min_normal:
        if notes is not None:
            notes.append(f"{where}: only {int(n_rows.sum())} metric samples before the onset (need "
                         f"{s.min_normal}); not scored")
        return []
    dev = deviations(frame.values[n_rows], frame.values[a_rows], sustain=s.sustain, rel_floor=s.rel_floor,
                     max_z=s.max_z, min_normal=s.min_normal, floor=floor, tail=s.tail)
    t_a = frame.seconds()[a_rows]
    out: list[tuple[Indicator, str]] = []
    for j, col in enumerate(frame.columns):
        if not np.isfinite(dev.median[j]) or dev.at_index[j] < 0:
            continue
        kind = metric_kind(col)
        score = float(dev.score[j])
        detail = ""
        if kind == "client_latency":
            score *= s.client_latency_weight
            detail = f"client-side latency (the callees'): weight {s.client_latency_weight:g}"
        ev = Evidence("metrics", kind, float(dev.median[j]), float(dev.spread[j]), float(dev.observed[j]),
                      float(t_a[dev.at_index[j]]), detail)
        out.append((Indicator(col, score, ev), kind))
    return out


def _edge_indicators(edges: Mapping[tuple[str, str], Frame], normal: tuple[float, float],
                     anomalous: tuple[float, float], s: RcaSettings, scored: _Scored, notes: list[str],
                     disturbed: np.ndarray | None) -> None:
    for (caller, callee), frame in edges.items():
        cols = list(frame.columns)
        if "caller_latency" not in cols:
            notes.append(f"edge {caller}->{callee}: no caller_latency column; skipped")
            continue
        series = {f"call latency from {caller}": ("call_latency", frame.column("caller_latency"))}
        if "callee_latency" in cols:
            series[f"network latency from {caller}"] = (
                "network", frame.column("caller_latency") - frame.column("callee_latency"))
        names = list(series)
        sub = Frame(frame.timestamps, np.column_stack([series[n][1] for n in names]), tuple(names), frame.name)
        # the network share is a difference near 0: floor its spread by the call latency's own level
        with np.errstate(all="ignore"):
            level = float(np.nanmedian(frame.column("caller_latency")[_window_rows(frame, normal)]))
        floor = np.array([0.0] + [s.rel_floor * abs(level)] * (len(names) - 1))
        for ind, _ in metric_indicators(sub, normal, anomalous, s, service=f"edge {caller}->{callee}",
                                        disturbed=disturbed, floor=floor):
            kind = series[ind.metric][0]
            ev = replace(ind.evidence, source="edges", kind=kind)
            scored[callee].append((Indicator(ind.metric, ind.score, ev), kind))


def _trace_indicators(spans: Sequence[Any], baseline_spans: Sequence[Any] | None, normal: tuple[float, float],
                      anomalous: tuple[float, float], scored: _Scored, notes: list[str],
                      min_samples: int) -> None:
    from opsmind.core.spans import group_traces
    from opsmind.traces.ranking import rank_services

    traces = group_traces(spans)
    before, after = [], []
    repaired = 0
    for tr in traces:
        repaired += bool(tr.warnings)
        start = tr.start_us / 1e6
        if normal[0] < start <= normal[1]:
            before.append(tr)
        elif anomalous[0] < start <= anomalous[1]:
            after.append(tr)
    if repaired:
        notes.append(f"traces: {repaired} of {len(traces)} traces had missing, orphan, duplicate or skewed spans "
                     "(repaired)")
    if baseline_spans:
        before += group_traces(baseline_spans)
    if not before or not after:
        notes.append(f"traces: {len(before)} traces before and {len(after)} after the onset; trace signals not scored")
        return
    mid = anomalous[0] + 0.5 * (anomalous[1] - anomalous[0])
    for svc, score, ev in rank_services(before, after, min_samples=min_samples):
        signal = str(ev.get("signal", "none"))
        if signal == "none" or score <= 0:
            continue
        part = ev.get(signal, {})
        detail = ", ".join(f"{k}={v}" for k, v in part.items()) if isinstance(part, dict) else str(part)
        evidence = Evidence("traces", "trace_" + signal, np.nan, np.nan, float(score), mid, f"{signal}: {detail}")
        kind = "trace_latency" if signal in ("self_latency", "network") else "errors"
        scored[svc].append((Indicator(f"trace {signal}", float(score), evidence), kind))


def _share_node(metrics: Mapping[str, Frame], scored: _Scored, normal: tuple[float, float]) -> None:
    """Divide node-level deviations among the services whose node metric is the same series (one node)."""
    keys: dict[tuple[str, bytes], list[str]] = defaultdict(list)
    for svc, frame in metrics.items():
        rows = _window_rows(frame, normal)
        for j, col in enumerate(frame.columns):
            if metric_kind(col) == "node":
                v = np.round(frame.values[rows, j], 6)
                keys[(col, v.tobytes())].append(svc)
    share: dict[tuple[str, str], int] = {}
    for (col, _), svcs in keys.items():
        for svc in svcs:
            share[(svc, col)] = len(svcs)
    for svc, items in scored.items():
        for k, (ind, kind) in enumerate(items):
            n = share.get((svc, ind.metric), 1)
            if kind == "node" and n > 1:
                ev = replace(ind.evidence, detail=_join(ind.evidence.detail, f"node metric shared by {n} services"))
                items[k] = (Indicator(ind.metric, ind.score / n, ev), kind)


def _inherited_load(scored: _Scored, graph: CallGraph, min_z: float) -> None:
    """Down-weight what a load increase that came from a service's callers explains at the service.

    With fixed call ratios a callee's request rate follows its callers': when a caller's rate rises by a fraction
    ``r``, the callee's rate rises by at most ``r`` too, so the part of a callee's relative rise that its
    callers' rise (a traffic metric of the same name, above ``min_z``) covers is not its own. The same share of
    its load-driven symptoms (latency and errors from saturation, CPU and memory use) is propagated too: the
    cause is where the load came from (an entry service, whose callers are outside), not where it saturates.
    A rise no caller shows (a client calling the service directly, retries) keeps its weight, and so does
    everything else when the service's load did not rise.
    """
    def rises(svc: str) -> dict[str, tuple[float, float]]:
        out: dict[str, tuple[float, float]] = {}
        for ind, kind in scored.get(svc, []):
            ev = ind.evidence
            if (kind in KIND_TRAFFIC and ev.source == "metrics" and ind.score > min_z and ev.normal > 0
                    and ev.observed > ev.normal):
                rel = (ev.observed / ev.normal - 1.0, ev.spread / ev.normal)
                out[ind.metric] = max(out.get(ind.metric, rel), rel)
        return out

    up = {svc: rises(svc) for svc in scored}
    weights: dict[str, tuple[float, str]] = {}
    for svc, own in up.items():
        best = (1.0, "")
        for metric, (rel, noise) in own.items():
            covered, by = max(((up.get(c, {}).get(metric, (0.0, 0.0))[0], c) for c in graph.callers(svc)),
                              default=(0.0, ""))
            # the part of its rise beyond its callers' and beyond one normal spread (both are noisy) is its own
            w = max(0.0, rel - covered - noise) / rel
            if covered > 0 and w < best[0]:
                best = (w, f"load from caller {by}: its {metric} rose {covered:.0%}, this one's {rel:.0%}")
        if best[0] < 1.0:
            weights[svc] = best
    load_kinds = KIND_LATENCY | KIND_TRAFFIC | {"cpu", "memory"}
    for svc, (w, why) in weights.items():
        items = scored[svc]
        for k, (ind, kind) in enumerate(items):
            if kind in load_kinds and ind.evidence.source == "metrics":
                ev = replace(ind.evidence, detail=_join(ind.evidence.detail, f"x{w:.2f}: {why}"))
                items[k] = (Indicator(ind.metric, ind.score * w, ev), kind)


def _propagate(scored: _Scored, graph: CallGraph) -> None:
    """Down-weight latency/error deviations a callee shows too, and traffic changes a caller shows too.

    Two measures of "shows too", the smaller weight wins: in robust z (``own / (own + strongest callee)``), and,
    for a latency metric that a callee has under the same name (same meaning and unit), in absolute terms: a
    caller's latency includes its callee's, so the part of its rise the callee's rise covers is not its own.
    """
    def strongest(svc: str, kinds: frozenset[str]) -> float:
        return max((i.score for i, k in scored.get(svc, []) if k in kinds), default=0.0)

    def rise(svc: str, metric: str) -> float:
        return max((i.evidence.observed - i.evidence.normal for i, k in scored.get(svc, [])
                    if i.metric == metric and k == "latency" and i.evidence.source == "metrics"
                    and np.isfinite(i.evidence.observed - i.evidence.normal)), default=0.0)

    lat = {svc: strongest(svc, KIND_LATENCY) for svc in scored}
    traffic = {svc: strongest(svc, KIND_TRAFFIC) for svc in scored}
    for svc, items in scored.items():
        down = max(((lat.get(c, 0.0), c) for c in graph.callees(svc)), default=(0.0, ""))
        up = max(((traffic.get(c, 0.0), c) for c in graph.callers(svc)), default=(0.0, ""))
        for k, (ind, kind) in enumerate(items):
            if kind in KIND_LATENCY and down[0] > 0 and lat[svc] > 0:
                w, why = lat[svc] / (lat[svc] + down[0]), f"callee {down[1]} deviates by {down[0]:.3g}"
                own = ind.evidence.observed - ind.evidence.normal
                if kind == "latency" and ind.evidence.source == "metrics" and own > 0:
                    covered, by = max(((rise(c, ind.metric), c) for c in graph.callees(svc)), default=(0.0, ""))
                    w_abs = max(0.0, own - covered) / own
                    if covered > 0 and w_abs < w:
                        w, why = w_abs, f"callee {by}'s {ind.metric} rose by {covered:.3g} of its {own:.3g}"
            elif kind in KIND_TRAFFIC and up[0] > 0 and traffic[svc] > 0:
                w, why = traffic[svc] / (traffic[svc] + up[0]), f"caller {up[1]} deviates by {up[0]:.3g}"
            else:
                continue
            ev = replace(ind.evidence, detail=_join(ind.evidence.detail, f"x{w:.2f}: {why}"))
            items[k] = (Indicator(ind.metric, ind.score * w, ev), kind)


def _join(a: str, b: str) -> str:
    return f"{a}; {b}" if a else b


def _entries(graph: CallGraph, services: set[str]) -> list[str]:
    """Services that call others and are called by none of the known services (the SLIs are theirs)."""
    return sorted(svc for svc in services if graph.callees(svc)
                  and not any(c in services for c in graph.callers(svc)))


def _default_slis(metrics: Mapping[str, Frame], graph: CallGraph) -> Frame | None:
    """Latency and error columns of the entry service(s): services that call others and are called by none."""
    entries = [svc for svc in metrics if graph.callees(svc) and not graph.callers(svc)]
    if not entries:
        return None
    frame = metrics[sorted(entries)[0]]
    cols = [c for c in frame.columns if metric_kind(c) in ("latency", "errors", "success")]
    if not cols:
        return None
    try:
        return frame.select(cols)
    except (ValueError, ConfigError):
        return None
