"""Trace readers, trace repair, critical path, baselines, service ranking, workflow advice and the CLI.

Every trace here is built by the test, so the expected answers are known exactly.
"""

from __future__ import annotations

import base64
import gzip
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from opsmind.cli.main import app
from opsmind.core.errors import ConfigError, DataError
from opsmind.core.spans import Span, Trace, group_traces
from opsmind.sources.traces import read_spans, read_traces, service_from_pod
from opsmind.traces import (
    CriticalPath,
    ErrorStats,
    analyze_trace,
    call_graph,
    critical_path,
    latency_baselines,
    rank_services,
    self_times,
)
from opsmind.traces.advice import AdviceSettings, advise, suggest_timeouts
from opsmind.traces.critical_path import aggregate_critical_paths, cp_time_saved, prepare
from opsmind.traces.report import summarize

MS = 1000


def cp_of(t: Trace) -> CriticalPath:
    out = critical_path(t)
    assert out is not None
    return out


def errors_of(t: Trace) -> ErrorStats:
    out = analyze_trace(t)
    assert out is not None
    return out.errors


def sp(tid: str, sid: str, parent: str | None, service: str, op: str, start_ms: float, end_ms: float,
       **kw: Any) -> Span:
    return Span(tid, sid, parent, service, op, int(start_ms * MS), int(end_ms * MS), **kw)


# ------------------------------------------------------------------------------------------------ trace repair
def test_trace_repairs_duplicates_orphans_cycles_and_negative_durations() -> None:
    spans = [
        sp("t", "root", None, "web", "GET /", 0, 100),
        sp("t", "a", "root", "db", "q", 10, 20),
        sp("t", "a", "root", "db", "q", 10, 20),            # duplicate id
        sp("t", "orphan", "gone", "cache", "get", 30, 40),  # parent never reported
        sp("t", "x", "y", "mq", "pub", 50, 55),             # x <-> y cycle
        sp("t", "y", "x", "mq", "sub", 51, 54),
        sp("t", "neg", "root", "db", "q", 60, 59),          # ends before it starts
        sp("t", "self", "self", "db", "q", 70, 71),         # its own parent
    ]
    tr = Trace.from_spans(spans)
    assert len(tr) == 7
    kinds = " | ".join(tr.warnings)
    for word in ("duplicate", "parent is missing", "cycle", "ending before", "themselves"):
        assert word in kinds
    assert tr.root is not None and tr.root.span_id == "root"
    assert tr.span("neg").duration_us == 0
    # every span is reachable from a root: the parent relation is a forest
    reached = {s.span_id for s, _ in tr.depth_first()}
    assert reached == {s.span_id for s in tr.spans}
    assert {r.span_id for r in tr.roots} == {"root", "orphan", "x", "self"}


def test_group_traces_and_empty_trace() -> None:
    ts = group_traces([sp("a", "1", None, "s", "o", 0, 1), sp("b", "2", None, "s", "o", 0, 2),
                       sp("a", "3", "1", "s", "o", 0, 1)])
    assert [(t.trace_id, len(t)) for t in ts] == [("a", 2), ("b", 1)]
    empty = Trace.from_spans([])
    assert empty.root is None and critical_path(empty) is None and analyze_trace(empty) is None


# ------------------------------------------------------------------------------------------------------ readers
def _jaeger_doc() -> dict[str, Any]:
    def span(sid: str, op: str, pid: str, start: int, dur: int, refs: list[tuple[str, str]],
             tags: list[dict[str, Any]] | None = None, logs: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {"traceID": "T1", "spanID": sid, "operationName": op, "startTime": start,
                               "duration": dur, "processID": pid,
                               "references": [{"refType": r, "traceID": "T1", "spanID": p} for r, p in refs],
                               "tags": tags or []}
        if logs is not None:
            out["logs"] = logs
        return out

    return {"data": [{"traceID": "T1", "processes": {
        "p1": {"serviceName": "frontend", "tags": [{"key": "hostname", "type": "string", "value": "h1"}]},
        "p2": {"serviceName": "cart", "tags": []}, "p3": {"serviceName": "mailer", "tags": []}},
        "spans": [
            span("A", "GET /cart", "p1", 1_000, 100_000, []),
            span("B", "GetCart", "p2", 11_000, 40_000, [("CHILD_OF", "A")],
                 tags=[{"key": "http.status_code", "type": "int64", "value": 503}]),
            span("C", "send", "p3", 90_000, 50_000, [("FOLLOWS_FROM", "A")]),
            span("D", "GetCart", "p2", 60_000, 10_000, [("CHILD_OF", "A")],
                 logs=[{"timestamp": 61_000, "fields": [{"key": "event", "type": "string", "value": "error"}]}]),
            {"traceID": "T1", "operationName": "no id"},
        ]}]}


def test_jaeger_reader(tmp_path: Path) -> None:
    p = tmp_path / "jaeger.json"
    p.write_text(json.dumps(_jaeger_doc()))
    batch = read_spans(p)
    by_id = {s.span_id: s for s in batch.spans}
    assert set(by_id) == {"A", "B", "C", "D"}
    assert "1 span(s) without a spanID or traceID skipped" in batch.warnings[0]
    assert by_id["A"].service == "frontend" and by_id["A"].attributes["hostname"] == "h1"
    assert by_id["B"].parent_id == "A" and by_id["B"].error and by_id["B"].duration_us == 40_000
    assert by_id["C"].follows_from and by_id["C"].parent_id == "A"
    assert by_id["D"].error  # error reported in the span's logs
    assert not by_id["A"].error


def test_otlp_reader_hex_base64_json_lines(tmp_path: Path) -> None:
    trace_id = bytes(range(16))
    root_id, child_id = bytes([1] * 8), bytes([2] * 8)

    def b64(b: bytes) -> str:
        return base64.b64encode(b).decode()

    doc1 = {"resourceSpans": [{"resource": {"attributes": [
        {"key": "service.name", "value": {"stringValue": "checkout"}},
        {"key": "host.name", "value": {"stringValue": "node-1"}}]},
        "scopeSpans": [{"spans": [{"traceId": trace_id.hex(), "spanId": root_id.hex(), "name": "POST /buy",
                                   "kind": 2, "startTimeUnixNano": "1700000000000000000",
                                   "endTimeUnixNano": "1700000000250000000", "status": {}}]}]}]}
    doc2 = {"resourceSpans": [{"resource": {"attributes": [
        {"key": "service.name", "value": {"stringValue": "payment"}}]},
        "scopeSpans": [{"spans": [{"traceId": b64(trace_id), "spanId": b64(child_id), "parentSpanId": b64(root_id),
                                   "name": "Charge", "kind": "SPAN_KIND_CONSUMER",
                                   "startTimeUnixNano": 1700000000010000000, "endTimeUnixNano": 1700000000110000000,
                                   "status": {"code": "STATUS_CODE_ERROR"},
                                   "attributes": [{"key": "retry", "value": {"intValue": "2"}}]},
                                  {"spanId": "zz"}]}]}]}
    p = tmp_path / "otlp.jsonl"
    p.write_text(json.dumps(doc1) + "\n" + json.dumps(doc2) + "\n")
    batch = read_spans(p)
    assert len(batch) == 2 and batch.warnings  # the span without a trace id is skipped and reported
    root, child = sorted(batch.spans, key=lambda s: s.start_us)
    assert root.trace_id == child.trace_id == trace_id.hex()
    assert child.parent_id == root.span_id == root_id.hex()
    assert (root.service, root.duration_us, root.attributes["span.kind"]) == ("checkout", 250_000, "server")
    assert root.attributes["host.name"] == "node-1"
    assert child.error and child.follows_from and child.attributes["retry"] == "2"


def test_csv_reader_nezha_gzip_and_generic(tmp_path: Path) -> None:
    nezha = ("TraceID,SpanID,ParentID,PodName,OperationName,StartTimeUnixNano,EndTimeUnixNano,Duration\n"
             "t1,a,root,ts-gateway-service-6f6cfc45b-h5m2n,/*,1674981768697000000,1674981769015316530,318316\n"
             "t1,b,a,ts-auth-service-7f8d7d756d-k7b9j,login,1674981768701000000,1674981769012521162,311521\n"
             "t1,c,b,ts-auth-service-7f8d7d756d-k7b9j,db,not-a-time,1674981769012521162,1\n")
    p = tmp_path / "08_43_trace.csv.gz"
    p.write_bytes(gzip.compress(nezha.encode()))
    batch = read_spans(p)
    assert [s.service for s in batch.spans] == ["ts-gateway-service", "ts-auth-service"]
    assert batch.spans[0].parent_id is None and batch.spans[1].parent_id == "a"
    assert batch.spans[0].duration_us == 318316
    assert "unreadable time" in batch.warnings[0] and "line 4" in batch.warnings[0]
    generic = ("trace_id;span_id;parent_span_id;service;name;start;duration_ms;status_code;http.url\n"
               "x;1;;web;GET /;2024-01-01T00:00:00Z;100;200;/a\n"
               "x;2;1;db;select;2024-01-01T00:00:00.010Z;20.5;500;\n")
    q = tmp_path / "spans.csv"
    q.write_text(generic)
    s1, s2 = read_spans(q).spans
    assert (s1.parent_id, s1.duration_us, s1.error, s1.attributes["http.url"]) == (None, 100_000, False, "/a")
    assert (s2.parent_id, s2.start_us - s1.start_us, s2.duration_us, s2.error) == ("1", 10_000, 20_500, True)


def test_service_from_pod() -> None:
    assert service_from_pod("ts-contacts-service-866bd68c97-xcqfx") == "ts-contacts-service"
    assert service_from_pod("emailservice") == "emailservice"


@pytest.mark.parametrize(("content", "fmt", "message"), [
    ("", "auto", "empty"),
    ("{not json", "auto", "not valid JSON"),
    ('{"foo": 1}', "auto", "neither Jaeger"),
    ("a,b,c\n1,2,3\n", "auto", "no column for trace"),
    ('{"data": 5}', "jaeger", "needs a \"data\" list"),
    ('{"resourceSpans": 3}', "otlp", "must be a list"),
    ("x", "yaml", "unknown trace format"),
])
def test_bad_trace_files_give_one_line_errors(tmp_path: Path, content: str, fmt: str, message: str) -> None:
    p = tmp_path / "bad.json"
    p.write_text(content)
    with pytest.raises(DataError, match=message) as info:
        read_spans(p, fmt)  # type: ignore[arg-type]
    assert str(p) in str(info.value) and "\n" not in str(info.value)


def test_missing_path_and_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such file"):
        read_spans(tmp_path / "nope.json")
    with pytest.raises(DataError, match="no trace files"):
        read_spans(tmp_path)


def test_read_traces_collects_repair_warnings(tmp_path: Path) -> None:
    p = tmp_path / "t.csv"
    p.write_text("trace_id,span_id,parent_id,service,operation,start_us,end_us\n"
                 "t,a,,web,GET,0,100\nt,a,,web,GET,0,100\nt,b,zz,db,q,10,20\nt,c,a,db,q,90,130\n")
    traces, warnings = read_traces(p)
    assert len(traces) == 1
    text = " ".join(warnings)
    assert "duplicate" in text and "parent is missing" in text and "clock skew" in text


# ------------------------------------------------------------------------------------------------ critical path
def test_critical_path_sequential_nested_and_overlap_allowance() -> None:
    t = Trace.from_spans([sp("t", "A", None, "S1", "O1", 0, 1), sp("t", "B", "A", "S2", "O2", 0.01, 0.21),
                          sp("t", "C", "A", "S3", "O3", 0.209, 0.309), sp("t", "D", "A", "S4", "O4", 0.308, 0.608)])
    # C overlaps D by 1 µs (0.1 % of A): still sequential, as CRISP allows
    assert cp_of(t).by_operation() == {"[S1] O1": 400, "[S2] O2": 200, "[S3] O3": 100, "[S4] O4": 300}
    t2 = Trace.from_spans([sp("t", "A", None, "S1", "O1", 0, 0.1), sp("t", "B", "A", "S2", "O2", 0.01, 0.06),
                           sp("t", "C", "B", "S3", "O3", 0.02, 0.03)])
    cp = cp_of(t2)
    assert cp.by_operation() == {"[S1] O1": 50, "[S2] O2": 40, "[S3] O3": 10}
    assert [s.span.span_id for s in cp.segments] == ["A", "B", "C"]
    assert sum(s.exclusive_us for s in cp.segments) == cp.duration_us


def test_critical_path_parallel_children_pick_the_last_finisher() -> None:
    t = Trace.from_spans([sp("t", "r", None, "web", "GET", 0, 100), sp("t", "a", "r", "a", "x", 10, 90),
                          sp("t", "b", "r", "b", "y", 20, 60), sp("t", "c", "r", "c", "z", 5, 8)])
    ops = cp_of(t).by_operation()
    assert ops == {"[web] GET": 100_000 - 80_000 - 3_000, "[a] x": 80_000, "[c] z": 3_000}


def test_clock_skew_is_clipped_or_dropped_with_a_warning() -> None:
    t = Trace.from_spans([sp("t", "A", None, "S1", "O1", 0, 0.1), sp("t", "B", "A", "S2", "O2", 0.01, 0.11),
                          sp("t", "C", "B", "S3", "O3", 0.04, 0.05), sp("t", "E", "A", "S5", "O5", 0.2, 0.3)])
    cp = cp_of(t)
    assert cp.by_operation() == {"[S1] O1": 10, "[S2] O2": 80, "[S3] O3": 10}  # B clipped to A, E dropped
    text = " ".join(cp.warnings)
    assert "clipped" in text and "dropped" in text
    assert any("clock skew" in w for w in t.warnings)


def test_remote_call_with_skewed_clock_is_shifted_not_clipped() -> None:
    # the server's clock runs 500 ms ahead: its span lies wholly outside its client span
    kind = {"span.kind": "client"}
    t = Trace.from_spans([sp("t", "r", None, "web", "GET", 0, 100), sp("t", "c", "r", "web", "HTTP GET", 10, 60,
                                                                       attributes=kind),
                          sp("t", "s", "c", "api", "/items", 515, 555, attributes={"span.kind": "server"}),
                          sp("t", "q", "s", "api", "query", 520, 550)])
    cp = cp_of(t)
    assert cp.by_operation() == {"[web] GET": 50_000, "[web] HTTP GET": 10_000, "[api] /items": 10_000,
                                 "[api] query": 30_000}
    assert any("shifted" in w for w in cp.warnings)
    seg = {s.span.span_id: s for s in cp.segments}
    assert seg["s"].start_us >= 10_000 and seg["s"].end_us <= 60_000  # now inside its client span
    assert seg["q"].start_us - seg["s"].start_us == 5_000  # the subtree moved with it


def test_async_children_are_off_the_critical_path() -> None:
    t = Trace.from_spans([sp("t", "r", None, "web", "POST", 0, 50), sp("t", "a", "r", "db", "insert", 10, 30),
                          sp("t", "m", "r", "mailer", "send", 40, 400, follows_from=True)])
    cp = cp_of(t)
    assert cp.by_operation() == {"[web] POST": 30_000, "[db] insert": 20_000}
    assert any("asynchronous" in w for w in cp.warnings)


def test_missing_spans_orphans_and_duplicates_never_crash() -> None:
    t = Trace.from_spans([sp("t", "r", None, "web", "GET", 0, 100), sp("t", "a", "r", "api", "x", 10, 50),
                          sp("t", "a", "r", "api", "x", 10, 50), sp("t", "o", "missing", "db", "q", 20, 30)])
    a = analyze_trace(t)
    assert a is not None and a.critical_path.root.span_id == "r"
    assert a.critical_path.by_operation() == {"[web] GET": 60_000, "[api] x": 40_000}
    assert a.errors.total_work_us == 140_000


def test_error_statistics_on_a_constructed_trace() -> None:
    # A calls B (error) then C; removing B lets A finish B's duration earlier
    t = Trace.from_spans([sp("t", "A", None, "S1", "O1", 0, 0.1), sp("t", "B", "A", "S2", "O2", 0.01, 0.04,
                                                                     error=True),
                          sp("t", "C", "A", "S3", "O3", 0.05, 0.09)])
    e = errors_of(t)
    assert (e.total_work_us, e.work_saved_us, e.cp_time_saved_us) == (170, 30, 30)
    assert e.error_counts == {"[S1] O1": (0, 0, 1), "[S1] O1->[S2] O2": (1, 0, 0)}
    assert e.no_error_cp == {"[S1] O1": 30, "[S3] O3": 40}


def test_cp_time_saved_and_aggregation() -> None:
    t = Trace.from_spans([sp("t", "a", None, "web", "GET", 0, 100), sp("t", "b", "a", "db", "q", 10, 50),
                          sp("t", "c", "a", "cache", "get", 20, 40), sp("t", "d", "a", "db", "q", 60, 90)])
    tree = prepare(t)
    assert tree is not None
    assert cp_time_saved(tree, {"d": 30_000}) == 30_000
    assert cp_time_saved(tree, {"c": 20_000}) == 0  # in parallel with b, which still runs
    assert cp_time_saved(tree, {}) == 0
    totals = aggregate_critical_paths([cp_of(t), cp_of(t)], by="service")
    assert [(x.key, x.total_us, x.traces) for x in totals] == [("db", 140_000, 2), ("web", 60_000, 2)]


# ------------------------------------------------------------------------------------- graph, baselines, ranking
def _shop(i: int, db_ms: float = 3.0, *, db_error: bool = False, with_cache: bool = True) -> Trace:
    j = (i % 5) * 0.1
    spans = [sp(f"t{i}", "r", None, "web", "GET /", 0, 20 + db_ms + j),
             sp(f"t{i}", "c", "r", "web", "HTTP GET", 1, 2 + db_ms + j, attributes={"span.kind": "client"}),
             sp(f"t{i}", "s", "c", "db", "query", 1.2 + j, 1.7 + db_ms + j, error=db_error,
                attributes={"span.kind": "server"})]
    if with_cache:
        spans.append(sp(f"t{i}", "k", "r", "cache", "get", 5 + db_ms + j, 6 + db_ms + j))
    return Trace.from_spans(spans)


def test_self_times_call_graph_and_baselines() -> None:
    t = _shop(0)
    own = self_times(t)
    assert own["c"] == 500 and own["s"] == 3_500  # the client span's own time is the network time
    assert own["r"] == 23_000 - 4_000 - 1_000
    edges = call_graph([_shop(i) for i in range(10)])
    assert {(e.caller, e.callee, e.calls) for e in edges} == {("web", "db", 10), ("web", "cache", 10)}
    base = {(b.service, b.operation): b for b in latency_baselines([_shop(i) for i in range(100)])}
    q = base[("db", "query")]
    assert q.count == 100 and q.error_rate == 0.0
    assert 3_500 <= q.p50_us <= q.p95_us <= q.p99_us <= q.p999_us <= 3_900


def test_rank_services_latency_errors_and_missing() -> None:
    baseline = [_shop(i) for i in range(60)]
    slow_db = [_shop(i, db_ms=30.0) for i in range(60)]
    ranked = rank_services(baseline, slow_db)
    assert ranked[0][0] == "db" and ranked[0][2]["signal"] == "self_latency"
    assert ranked[0][1] > 5 * max(score for name, score, _ in ranked[1:])
    failing = [_shop(i, db_error=(i % 2 == 0)) for i in range(60)]
    ranked = rank_services(baseline, failing)
    assert ranked[0][0] == "db" and ranked[0][2]["signal"] == "self_errors"
    no_cache = [_shop(i, with_cache=False) for i in range(60)]
    ranked = rank_services(baseline, no_cache)
    assert ranked[0][0] == "cache" and "missing" in ranked[0][2]
    quiet = rank_services(baseline, [_shop(i) for i in range(60, 120)])
    assert all(score < 1.0 for _, score, _ in quiet)
    assert rank_services([], []) == []


# ------------------------------------------------------------------------------------------------------- advice
def _checkout(i: int, *, repeat_user: int = 1, hang_ms: float | None = None, parallel: bool = False) -> Trace:
    """checkout calls pricing (40 ms), then inventory (30 ms), then user (5 ms) ``repeat_user`` times."""
    tid = f"c{i}"
    spans = [sp(tid, "r", None, "checkout", "POST /checkout", 0, 0)]
    t = 2.0
    pricing_end = t + 40
    spans.append(sp(tid, "p", "r", "pricing", "GET /price", t, pricing_end))
    inv_start = t if parallel else pricing_end + 0.5
    inv_end = inv_start + (hang_ms if hang_ms is not None else 30 + (i % 7) * 0.5)
    spans.append(sp(tid, "i", "r", "inventory", "GET /stock", inv_start, inv_end))
    t = max(pricing_end, inv_end) + 10.0  # the caller's own work, then the user lookups
    for k in range(repeat_user):
        spans.append(sp(tid, f"u{k}", "r", "user", "GET /user", t, t + 5, attributes={"user": "42"}))
        t += 5.5
    spans[0] = sp(tid, "r", None, "checkout", "POST /checkout", 0, t + 2)
    return Trace.from_spans(spans)


def test_advice_parallelisable_pair_with_its_saving() -> None:
    traces = [_checkout(i) for i in range(30)]
    items = advise(traces)
    par = [a for a in items if a.kind == "parallelize"]
    assert len(par) == 1
    a = par[0]
    assert a.target == "[checkout] POST /checkout"
    assert a.evidence["calls"] == ["[pricing] GET /price", "[inventory] GET /stock"]
    # the run spans 40 + 0.5 + (30..33) ms; in parallel it takes max(40, 30..33) = 40 ms
    expected = sum(0.5 + 30 + (i % 7) * 0.5 for i in range(30)) / 30
    assert a.gain_ms_per_trace == pytest.approx(expected, abs=0.01)
    assert a.traces_affected == 30 and len(a.example_trace_ids) == 3
    assert a.evidence["confidence"] == "medium"
    # seen overlapping in other traces: they cannot depend on each other
    items = advise(traces + [_checkout(100 + i, parallel=True) for i in range(3)])
    assert [a.evidence["confidence"] for a in items if a.kind == "parallelize"] == ["high"]


def test_advice_missing_timeout() -> None:
    traces = [_checkout(i, parallel=True) for i in range(300)]
    traces += [_checkout(1000 + i, hang_ms=5000, parallel=True) for i in range(2)]
    items = [a for a in advise(traces) if a.kind == "timeout"]
    assert len(items) == 1
    a = items[0]
    assert a.target == "checkout -> [inventory] GET /stock"
    # body p99.9 is 33 ms; x 1.5 = 49.5 -> 50 ms (two significant digits, rounded up)
    assert a.evidence["timeout_ms"] == 50.0 and a.evidence["slower_than_timeout"] == 2
    # each hung call ran 5000 ms beside a 40 ms pricing call: cutting it at 50 ms saves 4950 ms
    assert a.gain_ms_per_trace == pytest.approx(4950.0, abs=0.01)
    assert set(a.example_trace_ids) == {"c1000", "c1001"}
    timeouts = {(s.caller, s.callee): s.timeout_ms for s in suggest_timeouts(traces)}
    assert timeouts[("checkout", "[pricing] GET /price")] == 60.0  # 40 ms x 1.5


def test_advice_repeated_identical_call_is_a_caching_candidate() -> None:
    traces = [_checkout(i, repeat_user=4, parallel=True) for i in range(10)]
    cache = [a for a in advise(traces) if a.kind == "cache"]
    assert len(cache) == 1
    a = cache[0]
    assert "[user] GET /user" in a.evidence["call"] and "user=42" in a.evidence["call"]
    assert a.evidence["mean_calls_per_parent"] == 4.0 and a.evidence["calls_saved"] == 30
    # the three repeats (5 ms each) become free; the caller's 0.5 ms between calls stays (all-series model)
    assert a.gain_ms_per_trace == pytest.approx(3 * 5.0, abs=0.01)
    # different arguments are not identical calls
    varied = []
    for i in range(10):
        t = _checkout(i, repeat_user=3, parallel=True)
        varied.append(Trace.from_spans([s.replace(attributes={"user": s.span_id}) if s.service == "user" else s
                                        for s in t.spans]))
    assert not [a for a in advise(varied) if a.kind == "cache"]


def test_advice_retry_budget() -> None:
    traces = []
    for i in range(40):
        tid = f"r{i}"
        spans = [sp(tid, "r", None, "web", "GET", 0, 100)]
        attempts = 3 if i % 2 == 0 else 1  # every other request fails twice, then succeeds
        t = 1.0
        for k in range(attempts):
            spans.append(sp(tid, f"a{k}", "r", "api", "GET /x", t, t + 10, error=k < attempts - 1))
            t += 11
        traces.append(Trace.from_spans(spans))
    items = [a for a in advise(traces) if a.kind == "retry_budget"]
    assert len(items) == 1
    a = items[0]
    assert a.evidence["retries"] == 40 and a.evidence["requests"] == 40
    assert a.evidence["budget"] == pytest.approx(0.2)  # 2 x error rate, capped at 20 %
    assert a.gain_ms_per_trace == pytest.approx(20.0)  # two failed 10 ms attempts per retried request


def test_no_change_needed() -> None:
    traces = [Trace.from_spans([sp(f"n{i}", "r", None, "web", "GET", 0, 20),
                                sp(f"n{i}", "a", "r", "db", "q", 2, 18)]) for i in range(25)]
    items = advise(traces)
    assert [a.kind for a in items] == ["no_change"]
    assert items[0].gain_ms_total == 0.0 and items[0].traces_affected == 25
    assert AdviceSettings(min_gain_ms=5).min_gain_ms == 5


def test_summarize_picks_the_slowest_trace_or_the_given_one() -> None:
    traces = [_checkout(i) for i in range(5)]
    report = summarize(traces)
    slowest = max(traces, key=lambda t: t.duration_us)
    assert report.trace_id == slowest.trace_id
    assert summarize(traces, trace_id="c2").trace_id == "c2"
    with pytest.raises(ConfigError, match="not in the input"):
        summarize(traces, trace_id="nope")
    with pytest.raises(DataError):
        summarize([])
    doc = report.to_json()
    assert doc["critical_path"]["segments"][0]["operation"] == "POST /checkout"
    assert doc["advice"][0]["kind"] == "parallelize"


# ---------------------------------------------------------------------------------------------------------- CLI
def test_cli_traces_analyze(tmp_path: Path) -> None:
    p = tmp_path / "jaeger.json"
    p.write_text(json.dumps(_jaeger_doc()))
    runner = CliRunner()
    res = runner.invoke(app, ["traces", "analyze", str(p)])
    assert res.exit_code == 0, res.output
    assert "critical path of trace T1" in res.output and "[frontend] GET /cart" in res.output
    assert "cache" in res.output  # GetCart is called twice under the same parent
    res = runner.invoke(app, ["traces", "analyze", str(p), "--format", "json", "--trace-id", "T1"])
    assert res.exit_code == 0
    doc = json.loads(res.output)
    assert [s["span_id"] for s in doc["critical_path"]["segments"]] == ["A", "B", "D"]  # time order
    res = runner.invoke(app, ["traces", "analyze", str(p), "--trace-id", "zzz"])
    assert res.exit_code == 2 and "error:" in res.output
    bad = tmp_path / "bad.json"
    bad.write_text("{oops")
    res = runner.invoke(app, ["traces", "analyze", str(bad)])
    assert res.exit_code == 2 and "error:" in res.output and "not valid JSON" in res.output


def test_pathological_shapes_do_not_crash() -> None:
    deep = [sp("d", "0", None, "s0", "op", 0, 10_000)]
    deep += [sp("d", str(i), str(i - 1), f"s{i % 7}", "op", i * 0.001, 10_000 - i * 0.001) for i in range(1, 3000)]
    a = analyze_trace(Trace.from_spans(deep))
    assert a is not None and len(a.critical_path.segments) == 3000
    wide = [sp("w", "r", None, "web", "GET", 0, 100), sp("w", "long", "r", "db", "scan", 0, 99)]
    wide += [sp("w", f"z{i}", "r", "cache", "get", 50, 50) for i in range(300)]  # zero-length, same instant
    wide += [sp("w", f"q{i}", "r", f"svc{i % 3}", "q", i * 0.3, i * 0.3 + 0.2, error=i % 5 == 0) for i in range(300)]
    tw = Trace.from_spans(wide)
    a = analyze_trace(tw)
    assert a is not None and a.errors.total_work_us > 0
    assert advise([tw])  # never raises


def test_cache_advice_says_when_arguments_are_not_recorded() -> None:
    traces = []
    for i in range(5):
        t = _checkout(i, repeat_user=3, parallel=True)
        traces.append(Trace.from_spans([s.replace(attributes={}) for s in t.spans]))
    (a,) = [a for a in advise(traces) if a.kind == "cache"]
    assert a.evidence["arguments_recorded"] is False and "record no call arguments" in a.summary
    (b,) = [a for a in advise([_checkout(i, repeat_user=3, parallel=True) for i in range(5)]) if a.kind == "cache"]
    assert b.evidence["arguments_recorded"] is True and b.evidence["call"] == "[user] GET /user with user=42"
