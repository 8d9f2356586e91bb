"""Trace files read into :class:`~opsmind.core.spans.Span` values: Jaeger JSON, OTLP JSON and CSV.

:func:`read_spans` is the entry point; it takes one file or a folder of them (every ``.json``, ``.jsonl``,
``.csv`` and ``.gz`` file inside, in name order) and returns a :class:`SpanBatch`: the spans, plus one warning per
kind of problem met (a span without an id, an unreadable time...). A malformed file (not JSON, no span list, a CSV
without a trace-id column) raises a one-line :class:`~opsmind.core.DataError` naming the file, row and column;
a malformed span inside a good file is skipped and counted in the warnings. ``batch.traces()`` groups the spans
into :class:`~opsmind.core.spans.Trace` objects, which repair and report duplicate ids, orphans and cycles.

Formats
-------
- **Jaeger JSON** (the query API's ``/api/traces`` document, also what the UI downloads):
  ``{"data": [{"traceID", "spans": [{"traceID", "spanID", "operationName", "references": [{"refType",
  "traceID", "spanID"}], "startTime" (µs), "duration" (µs), "processID", "tags": [{"key", "type", "value"}]}],
  "processes": {id: {"serviceName", "tags"}}}]}``; a bare list of such traces or a single one is accepted too.
  ``FOLLOWS_FROM`` references make asynchronous children.
- **OTLP JSON** (``ExportTraceServiceRequest``, also one per line as the collector's file exporter writes):
  ``resourceSpans[].resource.attributes`` (``service.name``) and ``scopeSpans[]`` (or the older
  ``instrumentationLibrarySpans[]``) ``.spans[]`` with hex or base64 ids, ``startTimeUnixNano``,
  ``endTimeUnixNano``, ``parentSpanId``, ``status.code`` (2 or ``STATUS_CODE_ERROR`` = error), ``kind``. A
  ``CONSUMER`` span is an asynchronous child.
- **CSV** (gzip allowed): columns for trace id, span id, parent id, service *or* pod, operation, start, and end or
  duration, recognised by name (case and punctuation ignored; e.g. Nezha's ``TraceID, SpanID, ParentID, PodName,
  OperationName, StartTimeUnixNano, EndTimeUnixNano, Duration``). A parent id of ``root``, ``0``, ``null`` or
  empty means a root. Pod names become service names by dropping the two trailing Kubernetes hash segments
  (:func:`service_from_pod`). Times are numbers (unit from the column name, e.g. ``...UnixNano``, ``_ms``, or
  from their magnitude: Unix s, ms, µs or ns; small numbers are taken as µs) or ISO 8601 strings. Other columns
  become span attributes; an ``error``/``status``/``status_code`` column marks errors.

A span is an error when the file says so: Jaeger's ``error`` tag (``true`` or an error name), OTLP status code 2,
``otel.status_code=ERROR``, an HTTP status code >= 400, or a gRPC status other than OK.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import io
import json
import re
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

from opsmind.core.errors import DataError
from opsmind.core.spans import Span, Trace, group_traces

__all__ = ["Format", "SpanBatch", "is_error_tags", "read_spans", "read_traces", "service_from_pod", "spans_from_csv",
           "spans_from_jaeger", "spans_from_otlp"]

Format = Literal["auto", "jaeger", "otlp", "csv"]
_FORMATS = ("auto", "jaeger", "otlp", "csv")
_SUFFIXES = (".json", ".jsonl", ".ndjson", ".csv", ".tsv", ".gz")
_ROOT_PARENTS = {"", "root", "0", "null", "none", "nan", "-", "0000000000000000", "00000000000000000000000000000000"}
_POD_RE = re.compile(r"^(?P<service>.+?)-[a-z0-9]{5,10}-[a-z0-9]{5}$")
_HEX_RE = re.compile(r"^[0-9a-fA-F]+$")
_HOST_TAGS = {"hostname", "host.name", "ip", "k8s.pod.name", "service.instance.id"}  # kept from process/resource


@dataclass(frozen=True)
class SpanBatch:
    """Spans read from one or more files, and what was wrong with them."""

    spans: tuple[Span, ...]
    warnings: tuple[str, ...] = ()
    source: str = ""

    def traces(self) -> list[Trace]:
        """The spans grouped by trace id (see :meth:`Trace.from_spans` for the repairs and their warnings)."""
        return group_traces(self.spans)

    def __len__(self) -> int:
        return len(self.spans)


class _Issues:
    """Counts problems per kind and keeps the first place each was seen, so a bad file gives one line per kind."""

    def __init__(self) -> None:
        self._seen: dict[str, list[Any]] = {}

    def add(self, what: str, where: str) -> None:
        if what in self._seen:
            self._seen[what][0] += 1
        else:
            self._seen[what] = [1, where]

    def lines(self) -> tuple[str, ...]:
        return tuple(f"{n} {what} (first: {where})" for what, (n, where) in self._seen.items())


# --------------------------------------------------------------------------------------------------- entry point
def read_spans(path: str | Path, format: Format = "auto") -> SpanBatch:
    """Read a trace file, or every trace file in a folder, into a :class:`SpanBatch`.

    ``format="auto"`` recognises each file by its content: a JSON document with ``resourceSpans`` is OTLP, one
    with ``data``/``spans``/``traceID`` is Jaeger, anything else is tried as CSV.

    Examples
    --------
    >>> import tempfile
    >>> p = Path(tempfile.mkdtemp()) / "t.csv"
    >>> _ = p.write_text("TraceID,SpanID,ParentID,PodName,OperationName,StartTimeUnixNano,EndTimeUnixNano\\n"
    ...                  "t1,a,root,ts-order-service-866bd68c97-xcqfx,GET /order,1674981768697000000,"
    ...                  "1674981769015316530\\n")
    >>> b = read_spans(p)
    >>> s = b.spans[0]
    >>> (s.service, s.operation, s.parent_id, s.duration_us, s.attributes["pod"])
    ('ts-order-service', 'GET /order', None, 318316, 'ts-order-service-866bd68c97-xcqfx')
    """
    if format not in _FORMATS:
        raise DataError(f"unknown trace format {format!r}; expected one of {', '.join(_FORMATS)}", where=str(path))
    root = Path(path)
    if root.is_dir():
        files = sorted(p for p in root.rglob("*") if p.is_file() and p.name.lower().endswith(_SUFFIXES))
        if not files:
            raise DataError(f"no trace files ({', '.join(_SUFFIXES)}) in the folder", where=str(path))
    elif root.is_file():
        files = [root]
    else:
        raise DataError("no such file or folder", where=str(path))
    spans: list[Span] = []
    warnings: list[str] = []
    for f in files:
        got, warn = _read_file(f, format)
        spans += got
        warnings += [f"{f.name}: {w}" if len(files) > 1 else w for w in warn]
    return SpanBatch(tuple(spans), tuple(warnings), str(path))


def read_traces(path: str | Path, format: Format = "auto") -> tuple[list[Trace], list[str]]:
    """The traces in a file or folder, and every warning (reading and trace repair), as one list."""
    batch = read_spans(path, format)
    traces = batch.traces()
    warnings = list(batch.warnings)
    repaired: dict[str, int] = defaultdict(int)
    example: dict[str, str] = {}
    for t in traces:
        for w in t.warnings:
            kind = w.split(" ", 1)[1].split(" (first:", 1)[0]
            repaired[kind] += 1
            example.setdefault(kind, t.trace_id)
    warnings += [f"{n} trace(s) with {kind} (first: trace {example[kind]})" for kind, n in repaired.items()]
    return traces, warnings


def _read_file(file: Path, format: Format) -> tuple[list[Span], tuple[str, ...]]:
    where = str(file)
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read: {exc.strerror or exc}", where=where) from None
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as exc:
            raise DataError(f"not a readable gzip file: {exc}", where=where) from None
    if not data.strip():
        raise DataError("the file is empty", where=where)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise DataError(f"byte {data[exc.start]:#04x} is not UTF-8", where=where, row=line) from None
    head = text.lstrip()[:1]
    if format == "csv" or (format == "auto" and head not in ("{", "[")):
        return spans_from_csv(text, where=where)
    docs = _json_documents(text, where)
    kind = format if format != "auto" else _json_kind(docs, where)
    if kind == "otlp":
        return spans_from_otlp(docs, where=where)
    return spans_from_jaeger(docs, where=where)


def _json_documents(text: str, where: str) -> list[Any]:
    try:
        return [json.loads(text)]
    except json.JSONDecodeError as whole:
        docs: list[Any] = []
        for i, line in enumerate(text.splitlines(), 1):  # JSON lines (one document per line)
            if not line.strip():
                continue
            try:
                docs.append(json.loads(line))
            except json.JSONDecodeError:
                if not docs:
                    raise DataError(f"not valid JSON: {whole.msg} (line {whole.lineno} column {whole.colno})",
                                    where=where) from None
                raise DataError("not valid JSON on this line", where=where, row=i) from None
        return docs


def _json_kind(docs: list[Any], where: str) -> str:
    for d in docs:
        if isinstance(d, dict) and ("resourceSpans" in d or "resource_spans" in d):
            return "otlp"
        if isinstance(d, dict) and ("data" in d or "spans" in d or "traceID" in d):
            return "jaeger"
        if isinstance(d, list) and d and isinstance(d[0], dict) and "spans" in d[0]:
            return "jaeger"
    raise DataError("JSON that is neither Jaeger (data/spans) nor OTLP (resourceSpans)", where=where)


# ------------------------------------------------------------------------------------------------------- errors
def is_error_tags(tags: Mapping[str, Any]) -> bool:
    """Whether span tags mark an error: ``error`` true or an error name, HTTP status >= 400, gRPC status not OK.

    >>> is_error_tags({"error": True}), is_error_tags({"error": "ClientSideError"}), is_error_tags({"error": "false"})
    (True, True, False)
    >>> is_error_tags({"http.status_code": 404}), is_error_tags({"grpc.status": "NOT_FOUND"}), is_error_tags({})
    (True, True, False)
    """
    err = tags.get("error")
    if err is not None and err is not False and str(err).strip().lower() not in ("false", "0", "", "none", "null"):
        return True
    if str(tags.get("otel.status_code", "")).upper() == "ERROR":
        return True
    for key in ("http.status_code", "http.response.status_code"):
        code = _as_int(tags.get(key))
        if code is not None and code >= 400:
            return True
    for key in ("grpc.status", "grpc.status_code", "rpc.grpc.status_code"):
        value = tags.get(key)
        if value is not None and str(value).strip().upper() not in ("OK", "0", "", "STATUS_CODE_OK"):
            return True
    return False


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    try:
        return int(str(value).strip())  # exact for big integers such as Unix nanoseconds
    except ValueError:
        pass
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return int(number) if number == number and abs(number) != float("inf") else None


# -------------------------------------------------------------------------------------------------------- Jaeger
def spans_from_jaeger(docs: Iterable[Any], *, where: str = "") -> tuple[list[Span], tuple[str, ...]]:
    """Spans of parsed Jaeger JSON documents (see the module docstring for the accepted shapes)."""
    issues = _Issues()
    out: list[Span] = []
    any_trace = False
    for doc in docs:
        for ti, trace in enumerate(_jaeger_traces(doc, where)):
            any_trace = True
            processes: dict[str, Any] = trace["processes"] if isinstance(trace.get("processes"), dict) else {}
            spans = trace.get("spans")
            if not isinstance(spans, list):
                issues.add("trace(s) without a span list skipped", f"trace {ti + 1}")
                continue
            for si, raw in enumerate(spans):
                span = _jaeger_span(raw, trace, processes, issues, f"trace {ti + 1} span {si + 1}")
                if span is not None:
                    out.append(span)
    if not any_trace:
        raise DataError("no traces in the Jaeger document (expected {\"data\": [{\"spans\": [...]}]})", where=where)
    return out, issues.lines()


def _jaeger_traces(doc: Any, where: str) -> Iterator[dict[str, Any]]:
    if isinstance(doc, list):
        items = doc
    elif isinstance(doc, dict) and isinstance(doc.get("data"), list):
        items = doc["data"]
    elif isinstance(doc, dict) and "spans" in doc:
        items = [doc]
    elif isinstance(doc, dict) and "data" in doc and doc["data"] is None:
        items = []
    else:
        raise DataError("a Jaeger document needs a \"data\" list of traces", where=where)
    for item in items:
        if isinstance(item, dict):
            yield item


def _jaeger_span(raw: Any, trace: dict[str, Any], processes: dict[str, Any], issues: _Issues,
                 at: str) -> Span | None:
    if not isinstance(raw, dict):
        issues.add("span(s) that are not JSON objects skipped", at)
        return None
    span_id = _str_id(raw.get("spanID", raw.get("spanId")))
    trace_id = _str_id(raw.get("traceID", raw.get("traceId", trace.get("traceID"))))
    if not span_id or not trace_id:
        issues.add("span(s) without a spanID or traceID skipped", at)
        return None
    start = _as_int(raw.get("startTime"))
    duration = _as_int(raw.get("duration"))
    if start is None or duration is None:
        issues.add("span(s) without a numeric startTime/duration skipped", f"{at} ({span_id})")
        return None
    if duration < 0:
        issues.add("span(s) with a negative duration set to 0", f"{at} ({span_id})")
        duration = 0
    parent: str | None = None
    follows = False
    refs: list[Any] = raw["references"] if isinstance(raw.get("references"), list) else []
    child_of = [r for r in refs if isinstance(r, dict) and str(r.get("refType", "")).upper() == "CHILD_OF"]
    follows_from = [r for r in refs if isinstance(r, dict) and str(r.get("refType", "")).upper() == "FOLLOWS_FROM"]
    same_trace = [r for r in child_of + follows_from if _str_id(r.get("traceID", trace_id)) == trace_id]
    if same_trace:
        parent = _str_id(same_trace[0].get("spanID")) or None
        follows = same_trace[0] in follows_from
    elif raw.get("parentSpanID"):
        parent = _str_id(raw.get("parentSpanID"))
    if parent is not None and parent.lower() in _ROOT_PARENTS:
        parent = None
    process = raw["process"] if isinstance(raw.get("process"), dict) else processes.get(str(raw.get("processID")))
    service = str(process.get("serviceName", "")) if isinstance(process, dict) else ""
    if not service:
        issues.add("span(s) without a service name (named 'unknown')", f"{at} ({span_id})")
        service = "unknown"
    tags = _jaeger_tags(raw.get("tags"))
    process_tags = _jaeger_tags(process.get("tags") if isinstance(process, dict) else None)
    attributes = {k: _tag_text(v) for k, v in process_tags.items() if k in _HOST_TAGS}
    attributes.update({k: _tag_text(v) for k, v in tags.items()})
    error = is_error_tags(tags) or _jaeger_log_error(raw.get("logs"))
    return Span(trace_id, span_id, parent, service, str(raw.get("operationName", "")), start, start + duration,
                error, attributes, follows)


def _jaeger_log_error(logs: Any) -> bool:
    """OpenTracing's error logging: a log with ``event=error``, an ``error.object``/``error.kind`` or ``error``."""
    for entry in logs if isinstance(logs, list) else []:
        fields = _jaeger_tags(entry.get("fields")) if isinstance(entry, dict) else {}
        if str(fields.get("event", "")).lower() == "error" or "error.object" in fields or "error.kind" in fields:
            return True
        if "error" in fields and is_error_tags({"error": fields["error"]}):
            return True
    return False


def _jaeger_tags(tags: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if isinstance(tags, list):
        for t in tags:
            if isinstance(t, dict) and "key" in t:
                out[str(t["key"])] = t.get("value")
    elif isinstance(tags, dict):
        out = {str(k): v for k, v in tags.items()}
    return out


def _tag_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else json.dumps(value)


def _str_id(value: Any) -> str:
    return "" if value is None else str(value).strip()


# ---------------------------------------------------------------------------------------------------------- OTLP
_OTLP_KINDS = {0: "UNSPECIFIED", 1: "INTERNAL", 2: "SERVER", 3: "CLIENT", 4: "PRODUCER", 5: "CONSUMER"}


def spans_from_otlp(docs: Iterable[Any], *, where: str = "") -> tuple[list[Span], tuple[str, ...]]:
    """Spans of parsed OTLP JSON ``ExportTraceServiceRequest`` documents."""
    issues = _Issues()
    out: list[Span] = []
    for di, doc in enumerate(docs):
        if not isinstance(doc, dict):
            raise DataError("an OTLP document must be a JSON object with \"resourceSpans\"", where=where, row=di + 1)
        resource_spans = doc.get("resourceSpans", doc.get("resource_spans"))
        if not isinstance(resource_spans, list):
            raise DataError("\"resourceSpans\" must be a list", where=where)
        for ri, rs in enumerate(resource_spans):
            if not isinstance(rs, dict):
                continue
            resource: dict[str, Any] = rs["resource"] if isinstance(rs.get("resource"), dict) else {}
            res_attrs = _otlp_attributes(resource.get("attributes"))
            service = str(res_attrs.get("service.name") or "unknown")
            scopes = rs.get("scopeSpans", rs.get("instrumentationLibrarySpans", rs.get("scope_spans", [])))
            for si, scope in enumerate(scopes if isinstance(scopes, list) else []):
                spans = scope.get("spans") if isinstance(scope, dict) else None
                for pi, raw in enumerate(spans if isinstance(spans, list) else []):
                    at = f"resourceSpans[{ri}].scopeSpans[{si}].spans[{pi}]"
                    span = _otlp_span(raw, service, res_attrs, issues, at)
                    if span is not None:
                        out.append(span)
    return out, issues.lines()


def _otlp_span(raw: Any, service: str, res_attrs: dict[str, Any], issues: _Issues, at: str) -> Span | None:
    if not isinstance(raw, dict):
        issues.add("span(s) that are not JSON objects skipped", at)
        return None
    trace_id = _otlp_id(raw.get("traceId", raw.get("trace_id")))
    span_id = _otlp_id(raw.get("spanId", raw.get("span_id")))
    if not trace_id or not span_id:
        issues.add("span(s) without a traceId or spanId skipped", at)
        return None
    start = _as_int(raw.get("startTimeUnixNano", raw.get("start_time_unix_nano")))
    end = _as_int(raw.get("endTimeUnixNano", raw.get("end_time_unix_nano")))
    if start is None or end is None:
        issues.add("span(s) without numeric startTimeUnixNano/endTimeUnixNano skipped", f"{at} ({span_id})")
        return None
    parent = _otlp_id(raw.get("parentSpanId", raw.get("parent_span_id"))) or None
    if parent is not None and parent.lower() in _ROOT_PARENTS:
        parent = None
    attrs = _otlp_attributes(raw.get("attributes"))
    kind_raw = raw.get("kind", 0)
    kind = _OTLP_KINDS.get(_as_int(kind_raw) or 0, "UNSPECIFIED") if not isinstance(kind_raw, str) else (
        kind_raw.upper().removeprefix("SPAN_KIND_"))
    status: dict[str, Any] = raw["status"] if isinstance(raw.get("status"), dict) else {}
    code = status.get("code", 0)
    error = str(code).upper() in ("2", "STATUS_CODE_ERROR", "ERROR") or is_error_tags(attrs)
    attributes = {k: _tag_text(v) for k, v in res_attrs.items() if k in _HOST_TAGS}
    attributes.update({k: _tag_text(v) for k, v in attrs.items()})
    attributes["span.kind"] = kind.lower()
    return Span(trace_id, span_id, parent, service, str(raw.get("name", "")), start // 1000, end // 1000, error,
                attributes, follows_from=kind == "CONSUMER" and parent is not None)


def _otlp_id(value: Any) -> str:
    """OTLP ids as lower-case hex: the JSON encoding is hex; protobuf's generic JSON mapping gives base64."""
    text = _str_id(value)
    if not text or _HEX_RE.match(text):
        return text.lower()
    try:
        return base64.b64decode(text, validate=True).hex()
    except (binascii.Error, ValueError):
        return text


def _otlp_attributes(attrs: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for a in attrs if isinstance(attrs, list) else []:
        if isinstance(a, dict) and "key" in a:
            out[str(a["key"])] = _otlp_value(a.get("value"))
    return out


def _otlp_value(value: Any) -> Any:
    if not isinstance(value, dict):
        return value
    for key in ("stringValue", "boolValue", "intValue", "doubleValue"):
        if key in value:
            v = value[key]
            return int(v) if key == "intValue" and _as_int(v) is not None else v
    if "arrayValue" in value:
        return [_otlp_value(v) for v in value["arrayValue"].get("values", [])]
    return json.dumps(value)


# ----------------------------------------------------------------------------------------------------------- CSV
_CSV_ROLES: dict[str, tuple[str, ...]] = {
    "trace": ("traceid", "trace"),
    "span": ("spanid", "span", "id"),
    "parent": ("parentid", "parentspanid", "parent", "parentspan"),
    "service": ("service", "servicename", "svc", "app"),
    "pod": ("pod", "podname", "instance", "container"),
    "operation": ("operation", "operationname", "op", "name", "spanname", "endpoint", "method"),
    "start": ("start", "starttime", "starttimeunixnano", "startus", "starttimeus", "startms", "starttimems",
              "startns", "starttimestamp", "timestamp", "startunixnano"),
    "end": ("end", "endtime", "endtimeunixnano", "endus", "endtimeus", "endms", "endtimems", "endns",
            "endtimestamp", "endunixnano"),
    "duration": ("duration", "durationus", "durationms", "durationns", "elapsed", "latency", "latencyms",
                 "latencyus"),
    "error": ("error", "iserror", "haserror", "status", "statuscode", "httpstatuscode", "httpstatus"),
}


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _unit_from_name(name: str) -> str | None:
    n = _norm(name)
    if n.endswith(("nano", "nanos", "ns")):
        return "ns"
    if n.endswith(("us", "micros", "micro")):
        return "us"
    if n.endswith(("ms", "millis", "milli")):
        return "ms"
    if n.endswith(("sec", "secs", "seconds", "s")) and not n.endswith(("status", "ms", "us", "ns")):
        return "s"
    return None


_UNIT_US = {"ns": 1e-3, "us": 1.0, "ms": 1e3, "s": 1e6}


def spans_from_csv(text: str, *, where: str = "") -> tuple[list[Span], tuple[str, ...]]:
    """Spans of a CSV text (see the module docstring for the recognised columns)."""
    header = text.lstrip("\r\n").split("\n", 1)[0]
    sep = max((",", ";", "\t", "|"), key=header.count)
    try:
        df = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, sep=sep)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise DataError(f"malformed CSV: {str(exc).splitlines()[0]}", where=where) from None
    df.columns = [str(c).strip() for c in df.columns]
    if df.empty:
        raise DataError("no data rows", where=where)
    roles = _csv_roles(list(df.columns))
    missing = [r for r in ("trace", "span", "start") if r not in roles]
    if "service" not in roles and "pod" not in roles:
        missing.append("service or pod")
    if "end" not in roles and "duration" not in roles:
        missing.append("end or duration")
    if missing:
        raise DataError(f"no column for {', '.join(missing)}; columns: {', '.join(df.columns)}", where=where)
    issues = _Issues()
    n = len(df)
    lines = np.arange(2, n + 2, dtype=np.int64)
    start = _csv_times(df[roles["start"]], roles["start"], where, issues, lines)
    if "end" in roles:
        end = _csv_times(df[roles["end"]], roles["end"], where, issues, lines)
    else:
        col = roles["duration"]
        unit = _unit_from_name(col) or "us"
        dur = pd.to_numeric(df[col], errors="coerce").to_numpy(dtype=np.float64) * _UNIT_US[unit]
        bad = ~np.isfinite(dur)
        for j in np.flatnonzero(bad):
            issues.add(f"row(s) with an unreadable duration in column {col!r} skipped", f"line {lines[j]}")
        end = np.where(bad, np.nan, start + np.nan_to_num(dur))
    pods = df[roles["pod"]].to_numpy(dtype=object) if "pod" in roles else None
    if "service" in roles:
        services = df[roles["service"]].to_numpy(dtype=object)
    else:
        assert pods is not None
        services = np.array([service_from_pod(p) for p in pods], dtype=object)
    trace_ids = df[roles["trace"]].str.strip().to_numpy(dtype=object)
    span_ids = df[roles["span"]].str.strip().to_numpy(dtype=object)
    parents = df[roles["parent"]].str.strip().to_numpy(dtype=object) if "parent" in roles else None
    operations = df[roles["operation"]].to_numpy(dtype=object) if "operation" in roles else None
    errors = _csv_errors(df[roles["error"]]) if "error" in roles else np.zeros(n, dtype=bool)
    used = {roles[r] for r in roles if r not in ("error",)}
    extra = [c for c in df.columns if c not in used]
    extra_values = [df[c].to_numpy(dtype=object) for c in extra]
    out: list[Span] = []
    shared: dict[Any, Any] = {}  # one object per distinct trace id, name and attribute set: large files repeat them

    def same(value: Any) -> Any:
        return shared.setdefault(value, value)

    for i in range(n):
        tid, sid = trace_ids[i], span_ids[i]
        if not tid or not sid:
            issues.add("row(s) without a trace id or span id skipped", f"line {lines[i]}")
            continue
        s, e = start[i], end[i]
        if not (np.isfinite(s) and np.isfinite(e)):
            continue  # already counted by the time parser
        parent = parents[i] if parents is not None else None
        if parent is not None and parent.lower() in _ROOT_PARENTS:
            parent = None
        items = [(c, v[i]) for c, v in zip(extra, extra_values, strict=True) if v[i] != ""]
        if pods is not None:
            items.append(("pod", pods[i]))
        key = ("attrs", *items)
        attrs = shared.get(key)
        if attrs is None:
            attrs = shared[key] = MappingProxyType(dict(items))
        service = same(str(services[i]).strip() or "unknown")
        op = same(str(operations[i])) if operations is not None else ""
        out.append(Span(same(tid), sid, parent, service, op, int(s), int(e), bool(errors[i]), attrs))
    return out, issues.lines()


def _csv_roles(columns: list[str]) -> dict[str, str]:
    roles: dict[str, str] = {}
    normed = {c: _norm(c) for c in columns}
    for role, names in _CSV_ROLES.items():
        for name in names:  # the first alias in the list wins, so "traceid" beats "trace"
            hit = next((c for c in columns if normed[c] == name and c not in roles.values()), None)
            if hit is not None:
                roles[role] = hit
                break
    if "span" not in roles:  # e.g. "span_id_hex"
        hit = next((c for c in columns if normed[c].startswith("spanid") and c not in roles.values()), None)
        if hit:
            roles["span"] = hit
    return roles


def _csv_times(col: pd.Series, name: str, where: str, issues: _Issues,
               lines: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
    """Microseconds as float64 (NaN where unreadable, counted in ``issues``)."""
    numeric = pd.to_numeric(col, errors="coerce")
    if numeric.notna().sum() >= max(1, int(col.ne("").sum()) // 2):
        values = numeric.to_numpy(dtype=np.float64)
        unit = _unit_from_name(name) or _unit_from_magnitude(values)
        if unit == "ns" and pd.api.types.is_integer_dtype(numeric.dtype):
            out = (numeric.to_numpy() // 1000).astype(np.float64)  # exact: Unix µs fit in float64's 53 bits
        else:
            out = values * _UNIT_US[unit]
    else:
        parsed = pd.to_datetime(col, errors="coerce", utc=True, format="mixed")
        ns = parsed.to_numpy(dtype="datetime64[ns]").astype(np.int64)
        out = np.where(parsed.notna().to_numpy(), ns // 1000, np.nan).astype(np.float64)
    for i in np.flatnonzero(~np.isfinite(out)):
        issues.add(f"row(s) with an unreadable time in column {name!r} skipped", f"line {lines[i]}: {col.iloc[i]!r}")
    return out


def _unit_from_magnitude(values: npt.NDArray[np.float64]) -> str:
    finite = np.abs(values[np.isfinite(values)])
    top = float(finite.max()) if finite.size else 0.0
    if top >= 1e17:
        return "ns"
    if top >= 1e14:
        return "us"
    if top >= 1e11:
        return "ms"
    if top >= 1e8:
        return "s"
    return "us"


def _csv_errors(col: pd.Series) -> npt.NDArray[np.bool_]:
    out = np.zeros(len(col), dtype=bool)
    for i, v in enumerate(col.to_numpy(dtype=object)):
        text = str(v).strip().lower()
        code = _as_int(text)
        if code is not None:
            out[i] = code >= 400 or code == 2 or (code == 1 and _norm(str(col.name)) in ("error", "iserror",
                                                                                          "haserror"))
        else:
            out[i] = text in ("true", "yes", "error", "err", "status_code_error", "failed", "failure", "fail")
    return out


def service_from_pod(pod: str) -> str:
    """A Kubernetes pod name without its ReplicaSet hash and pod suffix; other names unchanged.

    >>> service_from_pod("ts-contacts-service-866bd68c97-xcqfx"), service_from_pod("frontend-5c8b8c5d-9xj2k")
    ('ts-contacts-service', 'frontend')
    >>> service_from_pod("redis-cart-0"), service_from_pod("cartservice")
    ('redis-cart-0', 'cartservice')
    """
    text = str(pod).strip()
    m = _POD_RE.match(text)
    return m.group("service") if m else text
