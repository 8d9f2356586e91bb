"""The SMD benchmark: its scorers on hand-computed cases and the command end to end on a tiny SMD-layout folder."""

from __future__ import annotations

import gzip
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from opsmind.bench.report import default_data_dir
from opsmind.bench.smd import METHODS, run_smd
from opsmind.bench.smd_metrics import best_f1, hitrate, pa_f1, segments
from opsmind.cli.main import app

KEYS = {"best_f1", "pa_f1", "hitrate_100", "hitrate_150"}


# --- scorers ----------------------------------------------------------------------------------------------


def test_best_f1_takes_the_best_threshold_and_treats_ties_together() -> None:
    y = np.array([1, 0, 0, 1, 0], dtype=bool)
    # threshold 0.9: P=1/1 R=1/2 -> 2/3; 0.7: tp=1 fp=1 -> 1/2; 0.6 (two rows tied): tp=2 fp=2 -> 2/3 ... max 2/3
    assert best_f1(np.array([0.9, 0.7, 0.6, 0.6, 0.1]), y) == pytest.approx(2 / 3)
    assert best_f1(np.array([0.9, 0.1, 0.2, 0.8, 0.3]), y) == 1.0
    assert math.isnan(best_f1(np.array([0.1, 0.2]), np.array([False, False])))


def test_point_adjust_credits_the_whole_segment() -> None:
    y = np.array([0, 1, 1, 1, 1, 0, 0, 1, 1, 0], dtype=bool)
    s = np.array([0.1, 0.2, 0.9, 0.1, 0.1, 0.3, 0.4, 0.1, 0.2, 0.0])
    # point-wise: 0.9 -> tp 1 -> 2/7; 0.2 -> tp 3, fp 2 -> 6/11; 0.1 -> tp 6, fp 3 -> 12/15 (the best)
    assert best_f1(s, y) == pytest.approx(12 / 15)
    # adjusted: at 0.9 the first segment (4 rows) counts -> P=1, R=4/6 -> F1 0.8;
    # at 0.2 both segments count (tp 6) with fp 2 (0.3, 0.4) -> 12/14
    assert pa_f1(s, y) == pytest.approx(12 / 14)
    assert segments(y) == [(1, 5), (7, 9)]


def test_hitrate_at_100_and_150_percent() -> None:
    ranking = np.array([[0.0, 3.0, 1.0, 2.0, 0.0], [5.0, 0.0, 0.0, 1.0, 0.0], [9.0, 9.0, 9.0, 9.0, 9.0]])
    labels = np.array([True, True, False])  # the third row is not labelled anomalous: ignored
    truth = [(0, 3, [1, 3])]
    # row 0: top-2 {1, 3} -> 1; row 1: top-2 {0, 3} -> 1/2       => 0.75
    assert hitrate(ranking, truth, labels, 100) == pytest.approx(0.75)
    # 150%: top-3. row 0 {1, 3, 2} -> 1; row 1 {0, 3, 1} -> 1     => 1.0
    assert hitrate(ranking, truth, labels, 150) == pytest.approx(1.0)
    # one ground-truth dim: floor(1.5 * 1) = 1 dim taken at 150%
    assert hitrate(ranking, [(0, 2, [0])], labels, 150) == pytest.approx(0.5)
    assert math.isnan(hitrate(ranking, [], labels, 100))


# --- the command on a tiny SMD-layout folder ----------------------------------------------------------------


def _write(path: Path, X: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "\n".join(",".join(f"{v:.6f}" for v in row) for row in X) + "\n"
    path.write_bytes(gzip.compress(text.encode()))


def _machine(root: Path, name: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    n, d = 300, 6
    train = np.clip(0.5 + 0.05 * rng.normal(size=(n, d)), 0, 1)
    test = np.clip(0.5 + 0.05 * rng.normal(size=(n, d)), 0, 1)
    test[200:220, 1] = 0.95
    test[200:220, 4] = 0.02
    labels = np.zeros(n, dtype=int)
    labels[200:220] = 1
    _write(root / "train" / f"{name}.txt.gz", train)
    _write(root / "test" / f"{name}.txt.gz", test)
    (root / "test_label").mkdir(exist_ok=True)
    (root / "test_label" / f"{name}.txt").write_text("\n".join(map(str, labels)) + "\n")
    (root / "interpretation_label").mkdir(exist_ok=True)
    (root / "interpretation_label" / f"{name}.txt").write_text("200-220:2,5\n")


@pytest.fixture
def smd_dir(tmp_path: Path) -> Path:
    root = tmp_path / "smd"
    _machine(root, "machine-9-1", 1)
    _machine(root, "machine-9-2", 2)
    return root


def test_cli_end_to_end_json_contract_and_results_dir(smd_dir: Path, tmp_path: Path) -> None:
    out, res, docs = tmp_path / "smd.json", tmp_path / "res", tmp_path / "bench.md"
    result = CliRunner().invoke(app, ["bench", "smd", "--data", str(smd_dir), "--json", str(out),
                                      "--results-dir", str(res), "--docs", str(docs), "--workers", "1"])
    assert result.exit_code == 0, result.output
    doc = json.loads(out.read_text())
    assert doc["benchmark"] == "smd" and doc["data"] == str(smd_dir) and doc["runtime_s"] > 0
    rows = doc["results"]
    assert {r["dataset"] for r in rows} == {"all", "machine-9-1", "machine-9-2"}
    assert {r["method"] for r in rows} == set(METHODS)
    assert len(rows) == 3 * len(METHODS) and all(set(r["metrics"]) == KEYS for r in rows)
    ops = next(r["metrics"] for r in rows if r["method"] == "opsmind" and r["dataset"] == "all")
    # the 5-row smoothing misses the first row or two of a fault; the attribution is right throughout
    assert ops["best_f1"] > 0.85 and ops["hitrate_100"] == pytest.approx(1.0)
    peer = next(r["metrics"] for r in rows if r["method"].startswith("ECOD") and r["dataset"] == "all")
    assert peer["hitrate_150"] is None  # no attribution from the library peers
    table = pd.read_csv(res / "machine-9-1.csv", keep_default_na=False)
    assert list(table.columns) == ["score", "is_anomaly", "top_dims"] and len(table) == 300
    assert table["is_anomaly"].sum() == 20 and set(str(table["top_dims"][210]).split()[:2]) == {"2", "5"}
    assert "<!-- bench:smd:start -->" in docs.read_text()


def test_cli_reports_a_missing_or_malformed_folder_in_one_line(tmp_path: Path) -> None:
    runner = CliRunner()
    missing = runner.invoke(app, ["bench", "smd", "--data", str(tmp_path / "nope"), "--docs", str(tmp_path / "d")])
    assert missing.exit_code == 2 and "SMD data folder not found" in missing.output
    (tmp_path / "bad" / "test").mkdir(parents=True)
    bad = runner.invoke(app, ["bench", "smd", "--data", str(tmp_path / "bad"), "--docs", str(tmp_path / "d")])
    assert bad.exit_code == 2 and "no train/ folder" in bad.output


def test_parallel_run_equals_serial_run(smd_dir: Path) -> None:
    serial = run_smd(smd_dir, workers=1)
    parallel = run_smd(smd_dir, workers=2)
    assert [r.to_json() for r in serial.results] == [r.to_json() for r in parallel.results]


@pytest.mark.benchdata
def test_one_real_smd_machine() -> None:
    data = default_data_dir("smd")
    if not (data / "test").is_dir():
        pytest.skip(f"SMD data not found at {data} (../shared/benchmarks/smd)")
    result = run_smd(data, ["machine-2-8"], workers=1)
    metrics = {r.method: r.metrics for r in result.rows("machine-2-8")}
    ops = metrics["opsmind"]
    assert 0.0 <= ops["best_f1"] <= ops["pa_f1"] <= 1.0
    assert ops["best_f1"] > metrics["random"]["best_f1"] + 0.3
    assert 0.0 < ops["hitrate_100"] <= ops["hitrate_150"] <= 1.0
