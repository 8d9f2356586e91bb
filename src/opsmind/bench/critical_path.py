"""``opsmind bench critical-path``: opsmind's critical path against CRISP's own test cases.

The data (``../shared/benchmarks/rca/crisp-critical-path-cases``) holds the 33 Jaeger JSON traces of CRISP's
test suite (``test_cases/*.json`` and ``test_cases/err_pattern*/*.json``), each with a ``"testing"`` key holding
CRISP's expected result: either a list whose first item maps ``[service] operation`` to exclusive critical-path
time, or a dict of named results. Every expected key opsmind computes is compared exactly:

==============================  =========================================================================
``opTimeExclusive``             exclusive critical-path time per operation
``totalWork``                   sum of span durations
``timeSavedOnWork``             durations of erroring spans
``timeSavedOnCP``               critical-path time saved without erroring spans (all-series)
``noErrCP``                     critical path without erroring spans (non-zero exclusive times)
``errOpTimeExclusive``          exclusive path time of erroring spans on the error critical path, per op
``errOpTimeInclusive``          path time attributable to errors, per op on the error critical path
``errCallpathTimeExclusive``    as ``errOpTimeExclusive``, per call path
``errCounts``                   (self, propagated, stopped) error counts per call path
``errCPCallpathTimeExclusive``  as ``errCallpathTimeExclusive``, call paths under CRISP's synthetic root
``errCPErrCounts``              as ``errCounts``, call paths under CRISP's synthetic root
==============================  =========================================================================

One upstream data defect is repaired before comparing, and reported in the notes: expected call-path keys
written with a doubled bracket (``[[S1] O1``, case 11) are read as ``[S1] O1``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opsmind.bench.report import BenchResult, BenchRow
from opsmind.core.errors import DataError
from opsmind.core.spans import group_traces
from opsmind.sources.traces import spans_from_jaeger
from opsmind.traces.critical_path import analyze_trace

__all__ = ["CaseResult", "compare_case", "list_cases", "run_critical_path"]

SYNTHETIC_ROOT = "errorCriticalPathSyntheticRoot->"


@dataclass
class CaseResult:
    name: str
    keys: int = 0
    matched: int = 0
    mismatches: list[str] = field(default_factory=list)
    repaired_keys: int = 0

    @property
    def exact(self) -> bool:
        return self.keys > 0 and self.matched == self.keys

    @property
    def critical_path_exact(self) -> bool:
        return not any(m.startswith("opTimeExclusive") for m in self.mismatches)


def _root(folder: Path) -> Path:
    return folder / "test_cases" if (folder / "test_cases").is_dir() else folder


def list_cases(folder: Path) -> list[Path]:
    """The case files under ``folder`` (or ``folder/test_cases``), sorted by name."""
    root = _root(folder)
    if not root.is_dir():
        raise DataError("no such folder (expected the CRISP test cases: test_cases/*.json)", where=str(folder))
    files = sorted(p for p in root.rglob("*.json") if p.is_file())
    if not files:
        raise DataError("no .json case files", where=str(root))
    return files


def _repair(value: Any) -> tuple[Any, int]:
    if isinstance(value, dict):
        out, n = {}, 0
        for k, v in value.items():
            fixed = k.replace("[[", "[") if isinstance(k, str) else k
            n += fixed != k
            out[fixed] = v
        return out, n
    return value, 0


def compare_case(doc: dict[str, Any], name: str = "") -> CaseResult:
    """Compare opsmind's results on one CRISP case document with its ``"testing"`` section."""
    result = CaseResult(name)
    expected = doc.get("testing")
    if isinstance(expected, list):
        expected = {"opTimeExclusive": expected[0]} if expected else {}
    if not isinstance(expected, dict) or not expected:
        raise DataError("no \"testing\" section with expected results", where=name)
    spans, _ = spans_from_jaeger([doc], where=name)
    traces = group_traces(spans)
    if len(traces) != 1:
        raise DataError(f"expected one trace, found {len(traces)}", where=name)
    analysis = analyze_trace(traces[0])
    if analysis is None:
        raise DataError("empty trace", where=name)
    e = analysis.errors
    got: dict[str, Any] = {
        "opTimeExclusive": analysis.critical_path.by_operation(),
        "totalWork": e.total_work_us,
        "timeSavedOnWork": e.work_saved_us,
        "timeSavedOnCP": e.cp_time_saved_us,
        "noErrCP": e.no_error_cp,
        "errOpTimeExclusive": e.error_op_exclusive,
        "errOpTimeInclusive": e.error_op_inclusive,
        "errCallpathTimeExclusive": e.error_call_path_exclusive,
        "errCounts": {k: list(v) for k, v in e.error_counts.items()},
        "errCPCallpathTimeExclusive": {SYNTHETIC_ROOT + k: v for k, v in e.error_call_path_exclusive.items()},
        "errCPErrCounts": {SYNTHETIC_ROOT + k: list(v) for k, v in e.error_counts.items()},
    }
    for key, want in expected.items():
        result.keys += 1
        if key not in got:
            result.mismatches.append(f"{key}: not computed by opsmind")
            continue
        want, repaired = _repair(want)
        result.repaired_keys += repaired
        if got[key] == want:
            result.matched += 1
        else:
            result.mismatches.append(f"{key}: expected {want}, got {got[key]}")
    return result


def run_critical_path(folder: Path, progress: Callable[[str], None] | None = None) -> tuple[BenchResult,
                                                                                           list[CaseResult]]:
    """Run every case; one summary row (``cases``, ``exact``, ...) and notes naming any mismatch."""
    started = time.perf_counter()
    results = []
    for path in list_cases(folder):
        name = path.relative_to(_root(folder)).as_posix()
        try:
            doc = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise DataError(f"not a readable JSON file: {exc}", where=str(path)) from None
        if not isinstance(doc, dict):
            raise DataError("a case file must be a JSON object", where=str(path))
        results.append(compare_case(doc, name))
        if progress is not None:
            progress(name)
    keys = sum(r.keys for r in results)
    matched = sum(r.matched for r in results)
    row = BenchRow("opsmind", {
        "cases": len(results),
        "exact": sum(r.exact for r in results),
        "critical_path_exact": sum(r.critical_path_exact for r in results),
        "keys": keys,
        "keys_matched": matched,
    })
    notes = [
        "A case is exact when every expected key in its \"testing\" section equals opsmind's result "
        "(critical path, total work, time saved, error critical path, error counts, critical path without errors).",
    ]
    repaired = [r for r in results if r.repaired_keys]
    if repaired:
        notes.append("Upstream typo repaired before comparing: " + ", ".join(
            f"{r.name} ({r.repaired_keys} expected key(s) written '[[' read as '[')" for r in repaired) + ".")
    for r in results:
        notes += [f"{r.name}: {m}" for m in r.mismatches]
    result = BenchResult("critical-path", str(folder), time.perf_counter() - started, [row], notes=notes)
    return result, results
