"""``opsmind bench rca``: root-cause localisation on the Nezha data (Yu et al., ESEC/FSE 2023), two systems.

Layout of ``--data`` (see ``../shared/benchmarks/rca/nezha/SOURCE.md``): ``rca_data/<day>/metric/<pod>_metric.csv[.gz]``
(one row per minute), ``front_service.csv[.gz]`` (frontend SLIs), optionally ``dependency.csv[.gz]`` (call edges)
and ``source_50``/``destination_50.csv[.gz]`` (per-edge latency at the caller and at the callee),
``trace/HH_MM_trace.csv[.gz]``, ``log/HH_MM_log.csv[.gz]`` and ``<day>-fault_list.json``; ``construct_data/<day>/``
holds fault-free ``trace/`` and ``log/`` samples and ``construct_data/root_cause_*.json`` the indicator labels.
A day whose services are named ``ts-*`` is Train Ticket, any other Online Boutique.

The data's known quirks are handled, each with a note: fault times are read from ``inject_time`` as UTC (one day's
``inject_timestamp`` is 8 h off); metric time comes from the ``Time`` column (``TimeStamp`` is offset in some
files); malformed log lines are skipped and counted; a faulty service without metrics is ranked last.

Methods, all in one run, all given the same data and the same fault time ``at`` = ``inject_time``:
``opsmind`` (:func:`opsmind.rca.analyze` with default settings on metrics, per-edge latencies, the dependency
graph, spans and logs, whatever the day has), ``opsmind (at-60s)`` and ``opsmind (at+60s)`` (the same, told a
time one minute off: the onset's robustness), ``opsmind (metrics only)`` (the same on per-service metrics and
SLIs alone), ``BARO-style`` (:func:`opsmind.rca.baro.baro_rank`: multivariate BOCPD onset, then median/IQR),
``robust z (at)`` (a quick robust-z ranking: median/IQR with a 5 % floor, absolute, split at ``at``) and
``random`` (a seeded shuffle).
Labels are read only by the scorer.
"""

from __future__ import annotations

import gzip
import io
import json
import re
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from opsmind.bench.report import BenchResult, BenchRow
from opsmind.core import DataError, Frame
from opsmind.rca import Case, LogLines, RcaResult, RcaSettings, analyze, parse_log_message, template_of
from opsmind.rca.baro import baro_rank
from opsmind.rca.scoring import metric_kind

__all__ = [
    "METHODS",
    "Day",
    "Fault",
    "FaultResult",
    "accuracy",
    "count_faults",
    "indicator_matches",
    "list_days",
    "load_case",
    "load_day",
    "read_calls_file",
    "read_case_dir",
    "read_log_dir",
    "read_log_lines",
    "read_metric_dir",
    "read_metric_file",
    "run_rca",
]

METHODS = ("opsmind", "opsmind (at-60s)", "opsmind (at+60s)", "opsmind (metrics only)", "BARO-style",
           "robust z (at)", "random")
SYSTEM_LABELS = {"online-boutique": "root_cause_hipster.json", "train-ticket": "root_cause_ts.json"}
_GO_TIME = re.compile(r"^\s*(\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(?:\.\d+)?)\s*(Z|[+-]\d{2}:?\d{2})?")
_SKIP_METRIC_FILES = ("front_service", "dependency", "source_50", "destination_50")
_MINUTE_FILE = re.compile(r"^(\d{2})_(\d{2})_(trace|log)\.csv(\.gz)?$")
NOTES = [
    "AC@k = share of faults whose root-cause service is among the top k; Avg@5 = mean of AC@1..AC@5; "
    "`ind_ac1` = share of faults with an indicator label (construct_data/root_cause_*.json) whose service is "
    "ranked first *and* whose top indicator matches the label (a CPU metric for `CpuUsageRate(%)`, a per-edge "
    "network/call latency for `NetworkP90(ms)`, one of the two log templates for a code region); `onset_60s` = "
    "share of faults whose onset estimate is within 60 s of inject_time; `onset_found` = share where the SLIs "
    "showed a change (else the onset is inject_time).",
    "Every method gets the same data and the same time `at` = inject_time (UTC). opsmind = `opsmind.rca.analyze` "
    "with default settings, one configuration for both systems: 1 h normal window before the onset, 3 min after, "
    "onset searched within 3 min of `at`. Online Boutique has metrics, per-edge latencies and the dependency "
    "graph; Train Ticket has metrics, traces and logs (trace and log files exist only around each fault: "
    "their normal window is what the hour before the onset holds, i.e. earlier faults' files and the minute before "
    "this one, plus the fault-free construct_data sample).",
    "`opsmind (at-60s)` / `opsmind (at+60s)` = opsmind told a fault time one minute early / late.",
    "BARO-style = diagonal multivariate BOCPD (hazard 1/50, prior centred on the data, confirmation after 3 "
    "samples) on every latency/error metric, change point nearest `at`, then RobustScorer (median/IQR, IQR 0 -> 1, "
    "largest scaled rise, as BARO's code) on every per-service metric; `robust z (at)` = median/IQR floored at 5 % "
    "of the median, largest |z|, split at `at` (no onset detection). random = seeded shuffle of the services.",
]


# ------------------------------------------------------------------------------------------------------ readers
def _open_text(path: Path) -> str:
    data = path.read_bytes()
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as exc:
            raise DataError(f"not a readable gzip file: {exc}", where=str(path)) from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"not UTF-8 text (byte {exc.start})", where=str(path)) from None


def _read_csv(path: Path, **kw: Any) -> pd.DataFrame:
    text = _open_text(path)
    if not text.strip():
        raise DataError("the file is empty", where=str(path))
    try:
        df: pd.DataFrame = pd.read_csv(io.StringIO(text), **kw)
    except (pd.errors.ParserError, ValueError) as exc:
        raise DataError(f"malformed CSV: {str(exc).splitlines()[0]}", where=str(path)) from None
    return df


def parse_time_column(col: pd.Series) -> np.ndarray:
    """Unix nanoseconds of Go-style ``2022-08-23 11:59:28.156628494 +0000 UTC m=+0.13`` strings (NaT -> -1)."""
    parts = col.astype(str).str.extract(_GO_TIME)
    text = parts[0].str.replace("T", " ", regex=False)
    offset = parts[1].fillna("+0000").str.replace("Z", "+0000", regex=False).str.replace(":", "", regex=False)
    parsed = pd.to_datetime(text + " " + offset, format="%Y-%m-%d %H:%M:%S.%f %z", errors="coerce", utc=True)
    plain = parsed.isna() & text.notna()
    if plain.any():
        parsed[plain] = pd.to_datetime(text[plain] + " " + offset[plain], format="%Y-%m-%d %H:%M:%S %z",
                                       errors="coerce", utc=True)
    out: np.ndarray = np.where(parsed.isna(), -1, parsed.astype("int64"))
    return out


def read_metric_file(path: Path, notes: list[str] | None = None) -> tuple[str, Frame]:
    """``(pod, frame)`` of one Nezha ``<pod>_metric.csv[.gz]`` file (time from ``Time``; see module docstring)."""
    where = str(path)
    df = _read_csv(path)
    if df.empty:
        raise DataError("no data rows", where=where)
    pod = path.name.split("_metric.csv")[0]
    if "PodName" in df.columns and df["PodName"].notna().any():
        pod = str(df["PodName"].dropna().iloc[0])
    ns = parse_time_column(df["Time"]) if "Time" in df.columns else np.full(len(df), -1)
    if "TimeStamp" in df.columns:
        stamp = pd.to_numeric(df["TimeStamp"], errors="coerce").to_numpy(dtype=np.float64)
        ok = (ns >= 0) & np.isfinite(stamp)
        if ok.any():
            gap = float(np.median(stamp[ok] - ns[ok] / 1e9))
            if abs(gap) > 60 and notes is not None:
                notes.append(f"{path.name}: TimeStamp column is offset by {gap:+.0f} s from Time; used Time")
        bad = ns < 0
        if bad.any() and np.isfinite(stamp[bad]).all() and bad.sum() < len(df):
            if notes is not None:
                notes.append(f"{path.name}: {int(bad.sum())} rows without a readable Time; used TimeStamp")
            ns[bad] = (stamp[bad] * 1e9).astype(np.int64)
        elif bad.all():
            if not np.isfinite(stamp).any():
                raise DataError("neither Time nor TimeStamp can be read as a time", where=where, column="Time")
            ns = np.where(np.isfinite(stamp), stamp * 1e9, -1).astype(np.int64)
            if notes is not None:
                notes.append(f"{path.name}: no readable Time column; used TimeStamp")
    keep = ns >= 0
    if not keep.any():
        raise DataError("no readable timestamps", where=where, column="Time")
    if not keep.all() and notes is not None:
        notes.append(f"{path.name}: {int((~keep).sum())} rows without a time dropped")
    value_cols = [c for c in df.columns if c not in ("Time", "TimeStamp", "PodName", "ServiceName", "time",
                                                      "timestamp")]
    values = np.column_stack([pd.to_numeric(df[c], errors="coerce").to_numpy(dtype=np.float64)
                              for c in value_cols]) if value_cols else np.empty((len(df), 0))
    frame_df = pd.DataFrame(values[keep], columns=value_cols)
    frame_df.insert(0, "timestamp", ns[keep].astype("datetime64[ns]"))
    frame = Frame.from_pandas(frame_df, timestamp="timestamp", name=pod)
    return pod, frame


def read_metric_dir(folder: Path, notes: list[str] | None = None) -> tuple[dict[str, Frame], Frame | None]:
    """Per-service frames of every ``*_metric.csv[.gz]`` (or other ``*.csv[.gz]``) in ``folder``, and the SLIs.

    A Nezha pod file becomes its service (pod name minus the ReplicaSet and pod hashes); several pods of one
    service are averaged per timestamp; ``front_service.csv`` is the SLI frame. Other CSV files are read with
    :func:`opsmind.sources.files.read_frame` and named after the file.
    """
    from opsmind.sources.files import read_frame
    from opsmind.sources.traces import service_from_pod

    if not folder.is_dir():
        raise DataError("not a folder", where=str(folder))
    notes = notes if notes is not None else []
    by_service: dict[str, list[Frame]] = defaultdict(list)
    slis: Frame | None = None
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.name.endswith((".csv", ".csv.gz")))
    for p in files:
        stem = p.name.removesuffix(".gz").removesuffix(".csv")
        if stem == "front_service":
            _, slis = read_metric_file(p, notes)
        elif stem.endswith("_metric"):
            pod, frame = read_metric_file(p, notes)
            by_service[service_from_pod(pod)].append(frame)
        elif stem not in _SKIP_METRIC_FILES:
            try:
                by_service[stem].append(read_frame(p))
            except DataError as exc:
                notes.append(f"skipped {p.name}: {exc}")
    if not by_service:
        raise DataError("no metric files (*_metric.csv[.gz] or <service>.csv)", where=str(folder))
    metrics: dict[str, Frame] = {}
    for svc, frames in by_service.items():
        if len(frames) == 1:
            metrics[svc] = Frame(frames[0].timestamps, frames[0].values, frames[0].columns, svc, frames[0].notes)
            continue
        notes.append(f"{svc}: {len(frames)} pods averaged per timestamp")
        merged = pd.concat([f.to_pandas() for f in frames]).groupby("timestamp").mean().reset_index()
        metrics[svc] = Frame.from_pandas(merged, timestamp="timestamp", name=svc)
    return metrics, slis


def _read_edges(folder: Path, services: Iterable[str], notes: list[str]) -> dict[tuple[str, str], Frame]:
    known = set(services)
    sides: dict[str, pd.DataFrame] = {}
    for name, col in (("source_50", "caller_latency"), ("destination_50", "callee_latency")):
        path = next((p for p in (folder / f"{name}.csv.gz", folder / f"{name}.csv") if p.is_file()), None)
        if path is None:
            continue
        df = _read_csv(path)
        tcol = "time" if "time" in df.columns else "Time"
        if tcol not in df.columns:
            notes.append(f"{path.name}: no time column; skipped")
            continue
        df.index = pd.DatetimeIndex(parse_time_column(df[tcol]).astype("datetime64[ns]"))
        df = df[df.index >= pd.Timestamp(0)].drop(columns=[c for c in ("time", "timestamp", "Time", "TimeStamp")
                                                           if c in df.columns])
        sides[col] = df
    if "caller_latency" not in sides:
        return {}
    out: dict[tuple[str, str], Frame] = {}
    for name in sides["caller_latency"].columns:
        pair = _split_edge(str(name), known)
        if pair is None:
            notes.append(f"edge column {name!r} does not name two known services; skipped")
            continue
        parts = {"caller_latency": pd.to_numeric(sides["caller_latency"][name], errors="coerce")}
        if "callee_latency" in sides and name in sides["callee_latency"].columns:
            callee = pd.to_numeric(sides["callee_latency"][name], errors="coerce")
            parts["callee_latency"] = callee.groupby(level=0).last().reindex(
                parts["caller_latency"].index, method="nearest", tolerance=pd.Timedelta(30, "s"))
        df = pd.DataFrame(parts)
        df.insert(0, "timestamp", df.index)
        out[pair] = Frame.from_pandas(df.reset_index(drop=True), timestamp="timestamp", name=f"{pair[0]}->{pair[1]}")
    return out


def _split_edge(name: str, known: set[str]) -> tuple[str, str] | None:
    for i, ch in enumerate(name):
        if ch == "_" and name[:i] in known and name[i + 1:] in known:
            return name[:i], name[i + 1:]
    return None


def _read_calls(folder: Path, services: Iterable[str]) -> tuple[tuple[str, str], ...]:
    path = next((p for p in (folder / "dependency.csv.gz", folder / "dependency.csv") if p.is_file()), None)
    if path is None:
        return ()
    df = _read_csv(path)
    cols = {c.lower(): c for c in df.columns}
    if "source" not in cols or "target" not in cols:
        raise DataError("expected Source and Target columns", where=str(path))
    known = set(services)
    pairs = zip(df[cols["source"]].astype(str), df[cols["target"]].astype(str), strict=True)
    return tuple(sorted({(a, b) for a, b in pairs if a in known and b in known and a != b}))


def read_case_dir(folder: Path, notes: list[str] | None = None) -> Case:
    """A :class:`~opsmind.rca.Case` from a metric folder: per-service frames and SLIs (:func:`read_metric_dir`),
    plus the call graph of ``dependency.csv[.gz]`` and the per-edge latencies of ``source_50``/``destination_50``
    when present (the Nezha layout)."""
    notes = notes if notes is not None else []
    metrics, slis = read_metric_dir(folder, notes)
    edges = _read_edges(folder, metrics, notes)
    return Case(metrics=metrics, slis=slis, calls=_read_calls(folder, metrics), edges=edges,
                notes=tuple(dict.fromkeys(notes)))


def read_calls_file(path: Path) -> tuple[tuple[str, str], ...]:
    """Call edges from a CSV with caller/callee (or source/target, parent/child, from/to) columns."""
    df = _read_csv(path)
    cols = {str(c).lower(): c for c in df.columns}
    a = next((cols[c] for c in ("caller", "source", "parent", "from") if c in cols), None)
    b = next((cols[c] for c in ("callee", "target", "child", "to") if c in cols), None)
    if a is None or b is None:
        raise DataError("expected caller and callee (or source and target) columns", where=str(path))
    pairs = zip(df[a].astype(str), df[b].astype(str), strict=True)
    return tuple(sorted({(x, y) for x, y in pairs if x != y}))


def read_log_dir(path: Path, notes: list[str] | None = None) -> LogLines:
    """Log lines of one Nezha log CSV file or of every ``*.csv[.gz]`` file in a folder."""
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and p.name.endswith((".csv", ".csv.gz")))
        if not files:
            raise DataError("no log files (*.csv[.gz]) in the folder", where=str(path))
        return LogLines.concat([read_log_lines(p, notes) for p in files])
    if not path.is_file():
        raise DataError("no such file or folder", where=str(path))
    return read_log_lines(path, notes)


def read_log_lines(path: Path, notes: list[str] | None = None) -> LogLines:
    """Log lines of one Nezha ``HH_MM_log.csv[.gz]`` file (malformed rows skipped and counted in ``notes``)."""
    from opsmind.sources.traces import service_from_pod

    bad: list[int] = []

    def skip(row: list[str]) -> None:
        bad.append(len(row))
        return None

    text = _open_text(path)
    try:
        df = pd.read_csv(io.StringIO(text), engine="python", on_bad_lines=skip, dtype=str)
    except (pd.errors.ParserError, ValueError) as exc:
        raise DataError(f"malformed CSV: {str(exc).splitlines()[0]}", where=str(path)) from None
    if bad and notes is not None:
        notes.append(f"{path.name}: {len(bad)} malformed log row(s) skipped")
    need = {"TimeUnixNano", "PodName", "Log"}
    if not need <= set(df.columns):
        raise DataError(f"expected columns {', '.join(sorted(need))}", where=str(path))
    ns = pd.to_numeric(df["TimeUnixNano"], errors="coerce")
    ok = ns.notna().to_numpy() & df["PodName"].notna().to_numpy() & df["Log"].notna().to_numpy()
    df, ns = df[ok], ns[ok]
    lt = [template_of(parse_log_message(m)) for m in df["Log"].tolist()]
    pods = df["PodName"].tolist()
    services = {p: service_from_pod(p) for p in set(pods)}
    return LogLines(ns.to_numpy(dtype=np.int64).astype("datetime64[ns]"),
                    np.array([services[p] for p in pods], dtype=str),
                    np.array([t for _, t in lt], dtype=str), np.array([lv for lv, _ in lt], dtype=str))


# ---------------------------------------------------------------------------------------------------- the data
@dataclass(frozen=True)
class Fault:
    day: str
    at_s: float
    service: str
    kind: str
    pod: str


@dataclass
class Day:
    """One day of the Nezha layout, loaded: metrics, SLIs, graph, edges, faults, and the minute files around."""

    name: str
    system: str
    metrics: dict[str, Frame]
    slis: Frame | None
    calls: tuple[tuple[str, str], ...]
    edges: dict[tuple[str, str], Frame]
    faults: list[Fault]
    trace_files: dict[int, Path] = field(default_factory=dict)  # minute of day -> file
    log_files: dict[int, Path] = field(default_factory=dict)
    baseline_traces: list[Path] = field(default_factory=list)
    baseline_logs: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    _cache: dict[str, Any] = field(default_factory=dict, repr=False)

    def spans(self, path: Path, notes: list[str]) -> list[Any]:
        """The spans of one trace file, read once per day (faults close together share files)."""
        from opsmind.sources.traces import read_spans

        key = f"spans:{path}"
        if key not in self._cache:
            batch = read_spans(path, "csv")
            self._cache[key] = (list(batch.spans), [f"{path.name}: {w}" for w in batch.warnings])
        spans, warnings = self._cache[key]
        notes += warnings
        return list(spans)

    def logs(self, path: Path, notes: list[str]) -> LogLines:
        """The log lines of one log file, read once per day."""
        key = f"logs:{path}"
        if key not in self._cache:
            file_notes: list[str] = []
            self._cache[key] = (read_log_lines(path, file_notes), file_notes)
        lines, file_notes = self._cache[key]
        notes += file_notes
        return lines  # type: ignore[no-any-return]

    def baseline(self, what: str, notes: list[str]) -> Any:
        """The fault-free spans (``"spans"``) or log lines (``"logs"``) of construct_data, read once."""
        if what == "spans":
            return [s for p in self.baseline_traces for s in self.spans(p, notes)]
        parts = [self.logs(p, notes) for p in self.baseline_logs]
        return LogLines.concat(parts) if parts else None


def list_days(data: Path) -> list[Path]:
    """Day folders under ``data/rca_data`` that hold a ``metric/`` folder and a fault list."""
    root = data / "rca_data"
    if not data.is_dir():
        raise DataError("Nezha data folder not found (pass --data DIR)", where=str(data))
    if not root.is_dir():
        raise DataError("no rca_data/ folder: not the Nezha layout", where=str(data))
    days = sorted(p for p in root.iterdir() if p.is_dir() and (p / "metric").is_dir()
                  and (p / f"{p.name}-fault_list.json").is_file())
    if not days:
        raise DataError("no day folder with metric/ and <day>-fault_list.json under rca_data/", where=str(data))
    return days


def count_faults(data: Path, days: Sequence[str] | None = None) -> int:
    """How many faults the fault lists of the chosen days hold (for a progress bar)."""
    total = 0
    for d in list_days(data):
        if days and d.name not in days:
            continue
        total += len(_read_faults(d / f"{d.name}-fault_list.json", d.name, []))
    return total


def _minute_files(folder: Path) -> dict[int, Path]:
    out: dict[int, Path] = {}
    if folder.is_dir():
        for p in folder.iterdir():
            m = _MINUTE_FILE.match(p.name)
            if m:
                out[int(m.group(1)) * 60 + int(m.group(2))] = p
    return out


def _read_faults(path: Path, day: str, notes: list[str]) -> list[Fault]:
    from opsmind.sources.traces import service_from_pod

    try:
        doc = json.loads(_open_text(path))
    except ValueError as exc:
        raise DataError(f"not JSON: {exc}", where=str(path)) from None
    items = [x for v in doc.values() for x in (v if isinstance(v, list) else [v])] if isinstance(doc, dict) else doc
    faults: list[Fault] = []
    skew: list[float] = []
    for k, x in enumerate(items):
        try:
            at = pd.Timestamp(str(x["inject_time"]), tz="UTC").value / 1e9
            pod = str(x["inject_pod"])
            kind = str(x["inject_type"])
        except (KeyError, TypeError, ValueError):
            raise DataError(f"fault {k}: expected inject_time, inject_pod, inject_type", where=str(path)) from None
        stamp = pd.to_numeric(pd.Series([x.get("inject_timestamp")]), errors="coerce").iloc[0]
        if pd.notna(stamp):
            skew.append(float(stamp) - at)
        faults.append(Fault(day, float(at), service_from_pod(pod), kind, pod))
    if skew and max(abs(v) for v in skew) > 60:
        notes.append(f"{day}: inject_timestamp differs from inject_time by up to {max(skew, key=abs):+.0f} s; "
                     "used inject_time (UTC)")
    return sorted(faults, key=lambda f: f.at_s)


def load_day(day_dir: Path) -> Day:
    """Read one day folder (metrics, SLIs, dependency graph, edges, fault list; trace and log files are indexed)."""
    notes: list[str] = []
    metrics, slis = read_metric_dir(day_dir / "metric", notes)
    system = "train-ticket" if any(s.startswith("ts-") for s in metrics) else "online-boutique"
    calls = _read_calls(day_dir / "metric", metrics)
    edges = _read_edges(day_dir / "metric", metrics, notes)
    faults = _read_faults(day_dir / f"{day_dir.name}-fault_list.json", day_dir.name, notes)
    for f in faults:
        if f.service not in metrics:
            notes.append(f"{day_dir.name}: faulty service {f.service} has no metric file (ranked last)")
    construct = day_dir.parent.parent / "construct_data" / day_dir.name
    day = Day(day_dir.name, system, metrics, slis, calls, edges, faults,
              _minute_files(day_dir / "trace"), _minute_files(day_dir / "log"),
              sorted(_minute_files(construct / "trace").values()), sorted(_minute_files(construct / "log").values()),
              list(dict.fromkeys(notes)))
    return day


def load_case(day: Day, fault: Fault, settings: RcaSettings, *, with_traces: bool = True,
              with_logs: bool = True, notes: list[str] | None = None) -> Case:
    """The case of one fault: the day's metrics, plus the trace and log minute files around the fault."""
    notes = notes if notes is not None else []
    day_start = pd.Timestamp(fault.at_s, unit="s", tz="UTC").normalize().value / 1e9
    lo = (fault.at_s - settings.search_s - settings.baseline_s - day_start) / 60.0 - 1
    hi = (fault.at_s + settings.search_s + settings.window_s - day_start) / 60.0 + 1
    spans: list[Any] = []
    baseline_spans: list[Any] = []
    logs: list[LogLines] = []
    baseline_logs: LogLines | None = None
    if with_traces:
        for minute, path in sorted(day.trace_files.items()):
            if lo <= minute <= hi:
                spans += day.spans(path, notes)
        baseline_spans = day.baseline("spans", notes)
    if with_logs:
        for minute, path in sorted(day.log_files.items()):
            if lo <= minute <= hi:
                logs.append(day.logs(path, notes))
        baseline_logs = day.baseline("logs", notes)
    return Case(metrics=day.metrics, slis=day.slis, calls=day.calls, edges=day.edges,
                spans=spans or None, baseline_spans=baseline_spans or None,
                logs=LogLines.concat(logs) if logs else None, baseline_logs=baseline_logs)


# ------------------------------------------------------------------------------------------------------ scoring
@dataclass
class FaultResult:
    """The rank each method gave the faulty service (``None`` = not ranked), and opsmind's details."""

    fault: Fault
    system: str
    ranks: dict[str, int | None]
    indicator_label: str | None = None
    indicator_ok: bool | None = None
    onset_error_s: float = float("nan")
    onset_found: bool = False
    top: list[str] = field(default_factory=list)


def indicator_matches(label: str, metric: str, kind: str) -> bool:
    """Whether a top indicator ``metric`` (of ``kind``) matches a Nezha fine-grained label.

    >>> indicator_matches("CpuUsageRate(%)", "CpuUsage(m)", "cpu"), indicator_matches("NetworkP90(ms)",
    ...     "network latency from frontend", "network"), indicator_matches("a.B#3_a.B#9", "log a.B#9", "log_template")
    (True, True, True)
    """
    if "_" in label and not label.endswith(")"):
        parts = [p.strip() for p in label.split("_")]
        key = metric.removeprefix("log ").strip()
        return any(key == p or (p and (key.startswith(p) or p.startswith(key))) for p in parts)
    if metric_kind(label) == "cpu":
        return kind == "cpu"
    if label.lower().startswith("network"):
        return kind in ("network", "call_latency", "trace_network") or metric.startswith("trace network")
    if metric_kind(label) == "memory":
        return kind == "memory"
    return metric == label


def accuracy(ranks: Sequence[int | None]) -> dict[str, float]:
    """AC@1, AC@3, Avg@5 and n of a list of 1-based ranks (``None`` = not ranked).

    >>> accuracy([1, 2, None, 6])
    {'ac1': 0.25, 'ac3': 0.5, 'avg5': 0.45, 'n': 4}
    """
    n = len(ranks)
    if n == 0:
        return {"ac1": float("nan"), "ac3": float("nan"), "avg5": float("nan"), "n": 0}

    def ac(k: int) -> float:
        return sum(1 for r in ranks if r is not None and r <= k) / n

    return {"ac1": round(ac(1), 4), "ac3": round(ac(3), 4), "avg5": round(float(np.mean([ac(k) for k in range(
        1, 6)])), 4), "n": n}


def _labels(data: Path, system: str) -> dict[str, dict[str, str]]:
    path = data / "construct_data" / SYSTEM_LABELS[system]
    if not path.is_file():
        return {}
    try:
        doc = json.loads(_open_text(path))
    except ValueError:
        return {}
    return {str(k): {str(a): str(b) for a, b in v.items()} for k, v in doc.items() if isinstance(v, dict)}


def evaluate_fault(day: Day, fault: Fault, settings: RcaSettings, labels: dict[str, dict[str, str]],
                   seed: int) -> FaultResult:
    """Run every method on one fault and score the ranks (labels are used only here, after ranking)."""
    notes: list[str] = []
    case = load_case(day, fault, settings, notes=notes)
    full = analyze(case, fault.at_s, settings=settings)
    early = analyze(case, fault.at_s - 60.0, settings=settings)
    late = analyze(case, fault.at_s + 60.0, settings=settings)
    metrics_only = analyze(Case(metrics=day.metrics, slis=day.slis), fault.at_s, settings=settings)
    baro, _, _ = baro_rank(day.metrics, fault.at_s, baseline_s=settings.baseline_s, window_s=settings.window_s,
                           search_s=settings.search_s)
    quick, _, _ = baro_rank(day.metrics, fault.at_s, baseline_s=settings.baseline_s,
                            window_s=settings.window_s, search_s=settings.search_s, use_onset=False,
                            floor=settings.rel_floor)
    services = sorted(set(full.services()))
    shuffled = [services[i] for i in np.random.default_rng(seed).permutation(len(services))]

    def rank(order: Sequence[str]) -> int | None:
        return order.index(fault.service) + 1 if fault.service in order else None

    res = FaultResult(fault, day.system, {
        "opsmind": full.rank_of(fault.service), "opsmind (at-60s)": early.rank_of(fault.service),
        "opsmind (at+60s)": late.rank_of(fault.service), "opsmind (metrics only)": metrics_only.rank_of(fault.service),
        "BARO-style": rank(baro), "robust z (at)": rank(quick), "random": rank(shuffled)})
    label = labels.get(fault.service, {}).get(fault.kind)
    if label is not None:
        res.indicator_label = label
        cause = next((c for c in full.ranking if c.service == fault.service), None)
        top = cause.top_indicator if cause is not None else None
        res.indicator_ok = bool(full.rank_of(fault.service) == 1 and top is not None
                                and indicator_matches(label, top.metric, top.evidence.kind))
    res.onset_error_s = full.onset.time_s - fault.at_s
    res.onset_found = full.onset.found
    res.top = _describe(full)
    return res


def _describe(result: RcaResult) -> list[str]:
    out = []
    for c in result.ranking[:3]:
        top = c.top_indicator
        out.append(f"{c.service} {c.score:.3g}" + (f" [{top.metric}]" if top else ""))
    return out


def run_rca(data: Path, *, settings: RcaSettings | None = None, days: Sequence[str] | None = None,
            progress: Callable[[str], None] | None = None,
            details: list[FaultResult] | None = None) -> BenchResult:
    """Every method on every fault of every day; rows per method and system, and per fault type."""
    s = settings or RcaSettings()
    t0 = time.perf_counter()
    day_dirs = list_days(data)
    if days:
        wanted = set(days)
        day_dirs = [d for d in day_dirs if d.name in wanted]
        if not day_dirs:
            raise DataError(f"none of the days {', '.join(sorted(wanted))} found under rca_data/", where=str(data))
    results: list[FaultResult] = []
    notes: list[str] = []
    seed = 0
    for d in day_dirs:
        day = load_day(d)
        notes += day.notes
        labels = _labels(data, day.system)
        for fault in day.faults:
            results.append(evaluate_fault(day, fault, s, labels, seed))
            seed += 1
            if progress is not None:
                progress(f"{day.name} {fault.service}")
    if details is not None:
        details += results
    rows = _rows(results)
    runtime = time.perf_counter() - t0
    return BenchResult("rca", str(data), runtime, rows, notes=[*NOTES, *dict.fromkeys(notes)])


def _rows(results: list[FaultResult]) -> list[BenchRow]:
    rows: list[BenchRow] = []
    systems = [s for s in ("online-boutique", "train-ticket") if any(r.system == s for r in results)]
    for system in systems:
        sub = [r for r in results if r.system == system]
        for method in METHODS:
            metrics = accuracy([r.ranks[method] for r in sub])
            if method == "opsmind":
                lab = [r for r in sub if r.indicator_ok is not None]
                metrics["ind_ac1"] = round(sum(bool(r.indicator_ok) for r in lab) / len(lab), 4) if lab else float(
                    "nan")
                metrics["ind_n"] = len(lab)
                metrics["onset_60s"] = round(float(np.mean([abs(r.onset_error_s) <= 60 for r in sub])), 4)
                metrics["onset_found"] = round(float(np.mean([r.onset_found for r in sub])), 4)
            rows.append(BenchRow(method, metrics, dataset=system))
    for system in systems:
        sub = [r for r in results if r.system == system]
        for kind in sorted({r.fault.kind for r in sub}):
            part = [r for r in sub if r.fault.kind == kind]
            for method in METHODS:
                rows.append(BenchRow(method, accuracy([r.ranks[method] for r in part]), dataset=f"{system}/{kind}"))
    return rows
