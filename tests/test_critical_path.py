"""The critical path against CRISP's expected results, and the ``opsmind bench critical-path`` command."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from opsmind.bench.critical_path import compare_case, list_cases, run_critical_path
from opsmind.bench.report import default_data_dir
from opsmind.cli.main import app
from opsmind.core.errors import DataError

DATA = default_data_dir("rca/crisp-critical-path-cases")
needs_data = pytest.mark.skipif(not (DATA / "test_cases").is_dir(),
                                reason=f"CRISP test cases not found at {DATA} (../shared/benchmarks)")


def _doc(spans: list[tuple[str, str | None, str, str, int, int, list[dict[str, Any]]]],
         testing: Any) -> dict[str, Any]:
    """A CRISP-style Jaeger document: (span id, parent, service, operation, start, duration, tags)."""
    services = sorted({s[2] for s in spans})
    return {"data": [{"traceID": "T", "processes": {svc: {"serviceName": svc, "tags": []} for svc in services},
                      "spans": [{"traceID": "T", "spanID": sid, "operationName": op, "startTime": start,
                                 "duration": dur, "processID": svc, "tags": tags,
                                 "references": [{"refType": "CHILD_OF", "traceID": "T", "spanID": parent}]
                                 if parent else []}
                                for sid, parent, svc, op, start, dur, tags in spans]}],
            "testing": testing}


ERR = [{"key": "error", "type": "bool", "value": True}]


def test_compare_case_on_constructed_traces() -> None:
    # sequential children with a 1 µs overlap each (within CRISP's 1 % allowance) and an erroring middle call
    doc = _doc([("A", None, "S1", "O1", 0, 1000, []), ("B", "A", "S2", "O2", 10, 200, []),
                ("C", "A", "S3", "O3", 209, 100, ERR), ("D", "A", "S4", "O4", 308, 300, [])],
               {"opTimeExclusive": {"[S1] O1": 400, "[S2] O2": 200, "[S3] O3": 100, "[S4] O4": 300},
                "totalWork": 1600, "timeSavedOnWork": 100, "timeSavedOnCP": 99,
                "errCPCallpathTimeExclusive": {"errorCriticalPathSyntheticRoot->[S1] O1->[S3] O3": 100},
                "errCPErrCounts": {"errorCriticalPathSyntheticRoot->[[S1] O1": [0, 0, 1],
                                   "errorCriticalPathSyntheticRoot->[S1] O1->[S3] O3": [1, 0, 0]}})
    r = compare_case(doc, "constructed")
    assert r.exact and r.keys == 6 and r.repaired_keys == 1, r.mismatches
    # a wrong expectation is reported, naming the key
    doc["testing"]["timeSavedOnCP"] = 100
    r = compare_case(doc, "constructed")
    assert not r.exact and r.critical_path_exact
    assert r.mismatches == ["timeSavedOnCP: expected 100, got 99"]
    # the old list form holds the critical path only
    r = compare_case(_doc([("A", None, "S1", "O1", 0, 100, []), ("B", "A", "S2", "O2", 10, 50, [])],
                          [{"[S1] O1": 50, "[S2] O2": 50}]))
    assert r.exact and r.keys == 1
    r = compare_case(_doc([("A", None, "S1", "O1", 0, 100, [])], {"someNewStatistic": 1}))
    assert r.mismatches == ["someNewStatistic: not computed by opsmind"]


def test_compare_case_rejects_documents_without_expectations(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="testing"):
        compare_case(_doc([("A", None, "S1", "O1", 0, 100, [])], None), "x.json")
    with pytest.raises(DataError, match="no such folder"):
        list_cases(tmp_path / "missing")


def test_bench_command_on_a_constructed_folder(tmp_path: Path) -> None:
    cases = tmp_path / "test_cases"
    (cases / "err_pattern1").mkdir(parents=True)
    (cases / "1.json").write_text(json.dumps(_doc([("A", None, "S1", "O1", 0, 100, [])], [{"[S1] O1": 100}])))
    (cases / "err_pattern1" / "err1.json").write_text(json.dumps(_doc(
        [("A", None, "S1", "O1", 0, 100, ERR), ("B", "A", "S2", "O2", 70, 30, ERR)],
        {"opTimeExclusive": {"[S1] O1": 70, "[S2] O2": 30}, "noErrCP": {}, "totalWork": 130,
         "timeSavedOnWork": 130, "timeSavedOnCP": 100, "errCounts": {"[S1] O1": [0, 1, 0], "[S1] O1->[S2] O2":
                                                                      [1, 0, 0]}})))
    out, docs = tmp_path / "cp.json", tmp_path / "benchmarks.md"
    res = CliRunner().invoke(app, ["bench", "critical-path", "--data", str(tmp_path), "--json", str(out),
                                   "--docs", str(docs)])
    assert res.exit_code == 0, res.output
    result = json.loads(out.read_text())
    assert result["benchmark"] == "critical-path"
    assert result["results"][0]["metrics"]["cases"] == 2 and result["results"][0]["metrics"]["exact"] == 2
    assert "<!-- bench:critical-path:start -->" in docs.read_text()
    res = CliRunner().invoke(app, ["bench", "critical-path", "--data", str(tmp_path / "nothing")])
    assert res.exit_code == 2 and "error:" in res.output


@needs_data
@pytest.mark.benchdata
@pytest.mark.parametrize("case", [p.relative_to(DATA / "test_cases").as_posix()
                                  for p in (list_cases(DATA) if (DATA / "test_cases").is_dir() else [])])
def test_crisp_case(case: str) -> None:
    doc = json.loads((DATA / "test_cases" / case).read_text())
    r = compare_case(doc, case)
    assert r.exact, r.mismatches


@needs_data
@pytest.mark.benchdata
def test_all_crisp_cases_exact() -> None:
    result, cases = run_critical_path(DATA)
    metrics = result.results[0].metrics
    assert metrics["cases"] == 33 and metrics["exact"] == 33 and metrics["critical_path_exact"] == 33
    assert metrics["keys"] == metrics["keys_matched"] == sum(c.keys for c in cases)
