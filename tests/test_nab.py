"""The NAB scorer and the ``opsmind bench nab`` harness."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from opsmind.bench.nab_scorer import PROFILES, load_profiles, load_windows, scaled_sigmoid, score_corpus, sweep_file
from opsmind.cli.main import app

NAB = Path(__file__).resolve().parents[2] / "shared" / "benchmarks" / "nab"
STANDARD = PROFILES["standard"]


def _ts(n: int) -> np.ndarray:
    return (np.datetime64("2024-01-01T00:00") + np.arange(n) * np.timedelta64(5, "m")).astype("datetime64[ns]")


def test_scaled_sigmoid_matches_the_paper() -> None:
    # sigma(-1) = 2*sigmoid(5) - 1, sigma(0) = 0, beyond 3 windows after: -1
    v = scaled_sigmoid(np.array([-1.0, 0.0, 0.5, 2.99, 3.0]))
    assert v[0] == pytest.approx(2 / (1 + np.exp(-5)) - 1)
    assert v[1] == 0.0
    assert v[2] == pytest.approx(2 / (1 + np.exp(2.5)) - 1)
    assert v[3] > -1.0 and v[4] == -1.0


def test_single_window_hand_computed() -> None:
    n = 1000  # probation = 150 rows
    ts = _ts(n)
    window = [(ts[500], ts[599])]
    scores = np.zeros(n)
    scores[500] = 1.0  # detection on the left edge of the window: worth tp_weight exactly
    scores[900] = 1.0  # false positive 300 rows after a 100-row window: position 300/99 >= 3 -> -1 * fp
    scores[100] = 1.0  # inside the probationary period: ignored
    corpus = score_corpus({"f.csv": (ts, scores)}, {"f.csv": window})
    raw = corpus.score_at(0.5, STANDARD)
    assert raw == pytest.approx(1.0 - 0.11)
    assert corpus.normalise(raw, STANDARD) == pytest.approx(100 * (0.89 + 1) / 2)
    # a late detection (last row of the window) is worth sigma(-1/100)/sigma(-1)
    late = np.zeros(n)
    late[599] = 1.0
    c2 = score_corpus({"f.csv": (ts, late)}, {"f.csv": window})
    expected = scaled_sigmoid(np.array([-1 / 100]))[0] / scaled_sigmoid(np.array([-1.0]))[0]
    assert c2.score_at(0.5, STANDARD) == pytest.approx(expected)
    # no detection: the window is a false negative
    assert score_corpus({"f.csv": (ts, np.zeros(n))}, {"f.csv": window}).score_at(0.5, STANDARD) == -1.0


def test_only_first_detection_in_a_window_counts_and_fp_near_window_is_cheap() -> None:
    n = 1000
    ts = _ts(n)
    window = [(ts[500], ts[599])]
    s = np.zeros(n)
    s[[520, 540, 560]] = 1.0
    s[610] = 1.0  # 11 rows after the window: position 11/99
    sweep = sweep_file("f.csv", ts, s, window)
    assert sweep.n_windows == 1
    corpus = score_corpus({"f.csv": (ts, s)}, {"f.csv": window})
    tp = scaled_sigmoid(np.array([-(599 - 520 + 1) / 100]))[0] / scaled_sigmoid(np.array([-1.0]))[0]
    fp = scaled_sigmoid(np.array([11 / 99]))[0] * 0.11
    assert corpus.score_at(0.5, STANDARD) == pytest.approx(tp + fp)


def test_sweep_equals_scoring_every_threshold() -> None:
    rng = np.random.default_rng(3)
    files, wins = {}, {}
    for k in range(4):
        n = 800 + 100 * k
        ts = _ts(n)
        files[f"f{k}.csv"] = (ts, np.round(rng.random(n), 2))
        wins[f"f{k}.csv"] = [(ts[300 + 50 * k], ts[380 + 50 * k]), (ts[600], ts[650])]
    corpus = score_corpus(files, wins)
    for profile in PROFILES.values():
        thresholds, values = corpus.sweep(profile)
        for th, v in zip(thresholds[::7], values[::7], strict=True):
            assert corpus.score_at(th, profile) == pytest.approx(v)
        _, best_v = corpus.best(profile)
        assert best_v == pytest.approx(max(corpus.score_at(t, profile) for t in thresholds))


@pytest.mark.benchdata
def test_reproduces_published_scores_of_shipped_detectors() -> None:
    if not (NAB / "results" / "final_results.json").is_file():
        pytest.skip(f"NAB benchmark data not found at {NAB} (../shared/benchmarks/nab)")
    windows = load_windows(NAB / "labels" / "combined_windows.json")
    profiles = load_profiles(NAB / "config" / "profiles.json")
    thresholds = json.loads((NAB / "config" / "thresholds.json").read_text())
    final = json.loads((NAB / "results" / "final_results.json").read_text())
    detectors = ["ARTime", "knncad", "null", "numenta", "windowedGaussian"]
    for det in detectors:
        results = {}
        for rel in windows:
            category, name = rel.split("/")
            df = pd.read_csv(NAB / "results" / det / category / f"{det}_{name}", usecols=["timestamp", "anomaly_score"])
            results[rel] = (pd.to_datetime(df["timestamp"]).to_numpy("datetime64[ns]"), df["anomaly_score"].to_numpy())
        corpus = score_corpus(results, windows)
        for pname, profile in profiles.items():
            raw = corpus.score_at(thresholds[det][pname]["threshold"], profile)
            assert corpus.normalise(raw, profile) == pytest.approx(final[det][pname], abs=0.01), (det, pname)
            # the corpus-wide threshold search never does worse than the published threshold
            _, best = corpus.best(profile)
            assert corpus.normalise(best, profile) >= final[det][pname] - 1e-6


def _tiny_nab(root: Path) -> None:
    """Two files in NAB's layout: a sine with one spike (labelled) and a clean sine."""
    rng = np.random.default_rng(0)
    (root / "data" / "catA").mkdir(parents=True)
    (root / "labels").mkdir()
    windows = {}
    for name, spike in (("spiky.csv", True), ("clean.csv", False)):
        n = 1200
        ts = pd.date_range("2024-01-01", periods=n, freq="5min")
        v = np.sin(np.arange(n) * 2 * np.pi / 144) * 10 + 50 + rng.normal(0, 0.2, n)
        if spike:
            v[900] = 120.0
        pd.DataFrame({"timestamp": ts.strftime("%Y-%m-%d %H:%M:%S"), "value": v}).to_csv(
            root / "data" / "catA" / name, index=False
        )
        windows[f"catA/{name}"] = (
            [[str(ts[860]) + ".000000", str(ts[940]) + ".000000"]] if spike else []
        )
    (root / "labels" / "combined_windows.json").write_text(json.dumps(windows))


def test_bench_nab_cli_end_to_end(tmp_path: Path) -> None:
    _tiny_nab(tmp_path / "nab")
    out = tmp_path / "out.json"
    docs = tmp_path / "benchmarks.md"
    res = CliRunner().invoke(
        app,
        ["bench", "nab", "--data", str(tmp_path / "nab"), "--json", str(out), "--docs", str(docs),
         "--results-dir", str(tmp_path / "res"), "--workers", "1"],
    )
    assert res.exit_code == 0, res.output
    payload = json.loads(out.read_text())
    assert payload["benchmark"] == "nab" and payload["runtime_s"] > 0
    row = next(r for r in payload["results"] if r["method"] == "opsmind")
    assert set(row["metrics"]) == {"standard", "reward_low_FP_rate", "reward_low_FN_rate"}
    assert row["metrics"]["standard"] > 50  # the spike is found early, the clean file stays quiet
    written = pd.read_csv(tmp_path / "res" / "catA" / "opsmind_spiky.csv")
    assert list(written.columns) == ["timestamp", "value", "anomaly_score", "label"]
    assert written["label"].sum() == 81 and written["anomaly_score"].iloc[900] > 0.5
    assert "<!-- bench:nab:start -->" in docs.read_text()


def test_bench_nab_bad_folder_is_a_clear_error(tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["bench", "nab", "--data", str(tmp_path), "--docs", str(tmp_path / "d.md")])
    assert res.exit_code == 2
    assert "not a NAB folder" in res.output
