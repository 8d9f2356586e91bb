"""Forecasters, seasonality detection, resampling, the forecast CLI and the forecast benchmark (generated data)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from opsmind.bench.report import default_data_dir
from opsmind.cli.main import app
from opsmind.core import ConfigError, DataError, FloatArray, Frame, NotFittedError
from opsmind.forecast import FORECASTERS, Ensemble, Forecast, default_forecaster, detect_periods, regularise
from opsmind.forecast.resample import mask_outages

HOUR = 3600.0
T0 = np.datetime64("2024-01-01T00:00:00", "ns")


def grid(n: int, step_s: float) -> np.ndarray:
    return T0 + np.arange(n, dtype=np.int64) * np.timedelta64(round(step_s * 1e9), "ns")


def frame(values: FloatArray, step_s: float = HOUR, name: str = "x") -> Frame:
    return Frame(grid(values.size, step_s), np.asarray(values, dtype=np.float64)[:, None], (name,), "test")


def seasonal(n: int, period: int, seed: int, noise: float = 1.0, amp: float = 5.0, level: float = 50.0) -> FloatArray:
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    return level + amp * np.sin(2 * np.pi * t / period) + rng.normal(0, noise, n)


# -- Forecast, registry, base behaviour ---------------------------------------------------------------------------


def test_registry_round_trip_and_default() -> None:
    assert {"seasonal_naive", "ets", "mstl", "theta", "opsmind"} <= set(FORECASTERS)
    model = FORECASTERS.build({"type": "opsmind", "params": {"backtest_origins": 12, "keep_ratio": 3.0}})
    spec = FORECASTERS.spec(model)
    assert spec["type"] == "opsmind" and spec["params"]["backtest_origins"] == 12
    again = FORECASTERS.build(spec)
    assert FORECASTERS.spec(again) == spec
    assert isinstance(default_forecaster(), Ensemble)
    with pytest.raises(ConfigError, match="unknown forecaster"):
        FORECASTERS.build("prophet")
    with pytest.raises(ConfigError, match="unknown members"):
        FORECASTERS.build({"type": "opsmind", "params": {"members": ["lstm"]}})


def test_forecast_type_and_grid() -> None:
    fc = FORECASTERS.build("seasonal_naive").fit(frame(seasonal(24 * 5, 24, 0))).predict(6)
    assert isinstance(fc, Forecast) and len(fc) == 6 and fc.levels == (80, 95)
    assert fc.timestamps[0] == grid(24 * 5 + 1, HOUR)[-1]
    assert np.all(np.diff(fc.timestamps) == np.timedelta64(3600, "s"))
    df = fc.to_pandas()
    assert list(df.columns) == ["timestamp", "mean", "lower_80", "upper_80", "lower_95", "upper_95"]
    assert np.all(fc.lower(95) <= fc.lower(80)) and np.all(fc.upper(80) <= fc.upper(95))
    with pytest.raises(ConfigError, match="no 50 % interval"):
        fc.lower(50)


def test_predict_before_fit_and_bad_arguments() -> None:
    with pytest.raises(NotFittedError):
        FORECASTERS.build("opsmind").predict(3)
    model = FORECASTERS.build("seasonal_naive").fit(frame(np.arange(10.0)))
    with pytest.raises(ConfigError, match="horizon"):
        model.predict(0)
    with pytest.raises(ConfigError, match="between 0 and 100"):
        model.predict(3, levels=(80, 100))
    two = Frame(grid(10, HOUR), np.ones((10, 2)), ("a", "b"), "f")
    with pytest.raises(DataError, match="one column"):
        FORECASTERS.build("opsmind").fit(two)
    with pytest.raises(DataError, match="at least 2"):
        FORECASTERS.build("opsmind").fit(frame(np.array([1.0])))
    with pytest.raises(DataError, match="no finite values"):
        FORECASTERS.build("opsmind").fit(frame(np.full(10, np.nan)))


def test_seasonal_naive_is_exact() -> None:
    y = seasonal(24 * 4, 24, 1)
    fc = FORECASTERS.build({"type": "seasonal_naive", "params": {"period": 24}}).fit(frame(y)).predict(30)
    expected = np.concatenate([y[-24:], y[-24:-18]])
    np.testing.assert_array_equal(fc.mean, expected)
    # The second season's interval is wider by sqrt(2).
    width = fc.upper(95) - fc.lower(95)
    assert width[24] == pytest.approx(width[0] * np.sqrt(2))
    naive = FORECASTERS.build({"type": "seasonal_naive", "params": {"period": 1}}).fit(frame(y)).predict(3)
    np.testing.assert_array_equal(naive.mean, np.full(3, y[-1]))


# -- seasonality -------------------------------------------------------------------------------------------------


def test_detect_daily_weekly_and_none() -> None:
    n = 24 * 7 * 4
    t = np.arange(n)
    rng = np.random.default_rng(2)
    daily = 10 + 3 * np.sin(2 * np.pi * t / 24) + rng.normal(0, 0.5, n)
    assert detect_periods(daily, HOUR)[0] == (24,)
    weekend = np.where((t // 24) % 7 >= 5, -4.0, 0.0)
    assert detect_periods(daily + weekend, HOUR)[0] == (24, 168)
    periods, notes = detect_periods(rng.normal(0, 1, n), HOUR)
    assert periods == ()
    assert any("no daily seasonality" in s for s in notes)
    # 5-minute data: the daily period is 288 steps.
    t5 = np.arange(288 * 4)
    assert detect_periods(5 + np.sin(2 * np.pi * t5 / 288) + rng.normal(0, 0.1, t5.size), 300.0)[0] == (288,)


def test_detect_short_history_explains() -> None:
    periods, notes = detect_periods(np.arange(60.0), 300.0)  # 5 hours of 5-minute data
    assert periods == ()
    assert "not enough history for daily seasonality: need 2 d, have 5 h" in notes
    assert detect_periods(np.full(100, 3.0), HOUR) == ((), ["the series is constant: no seasonality"])


# -- resampling and gaps -----------------------------------------------------------------------------------------


def test_regularise_mean_sum_and_gaps() -> None:
    ts = np.array(["2024-01-01T00:00:10", "2024-01-01T00:00:40", "2024-01-01T00:01:30", "2024-01-01T00:04:00"],
                  dtype="datetime64[ns]")
    f = Frame(ts, np.array([[1.0], [3.0], [5.0], [7.0]]), ("v",), "f")
    mean = regularise(f, 60.0)
    assert mean.timestamps[0] == np.datetime64("2024-01-01T00:00:00", "ns")
    np.testing.assert_array_equal(mean.values[:, 0], [2.0, 5.0, np.nan, np.nan, 7.0])
    assert any("2 of 5 buckets" in n for n in mean.notes)
    np.testing.assert_array_equal(regularise(f, 60.0, "sum").values[:, 0], [4.0, 5.0, np.nan, np.nan, 7.0])
    with pytest.raises(ConfigError):
        regularise(f, 0.0)
    with pytest.raises(ConfigError):
        regularise(f, 60.0, "median")  # type: ignore[arg-type]


def test_mask_outages_only_in_positive_series() -> None:
    y = np.concatenate([np.full(100, 5.0), np.zeros(20), np.full(100, 6.0)])
    masked, notes = mask_outages(y, 12)
    assert np.isnan(masked[100:120]).all() and np.isfinite(masked[:100]).all() and notes
    short, notes = mask_outages(y, 30)  # the run is shorter than the rule: kept
    assert np.isfinite(short).all() and not notes
    idle = np.where(np.arange(300) % 50 < 40, 0.0, 3.0)  # mostly zero: zeros are the normal state
    assert np.isfinite(mask_outages(idle, 12)[0]).all()


def test_irregular_input_is_put_on_a_grid() -> None:
    ts = grid(24 * 6, HOUR)
    keep = np.ones(ts.size, dtype=bool)
    keep[[10, 11, 50, 51, 52, 90]] = False
    y = seasonal(ts.size, 24, 3)
    f = Frame(ts[keep], y[keep][:, None], ("v",), "f")
    fc = FORECASTERS.build("opsmind").fit(f).predict(5)
    assert np.isfinite(fc.mean).all()
    assert any("regular 1 h grid" in n for n in fc.notes)
    assert any("missing steps" in n for n in fc.notes)


# -- behaviour on awkward series -----------------------------------------------------------------------------------

EDGE_CASES = {
    "short": (np.array([3.0, 4.0, 5.0, 4.0, 6.0]), "not enough history"),
    "gaps": (np.where((np.arange(24 * 5) % 40) < 8, np.nan, seasonal(24 * 5, 24, 4)), "missing steps"),
    "zeros": (np.zeros(24 * 3), "constant"),
    "constant": (np.full(24 * 3, 7.5), "constant"),
    "negative": (seasonal(24 * 5, 24, 5, level=-20.0), "seasonality"),
    "noise": (np.random.default_rng(6).normal(0, 1, 24 * 10), "no daily seasonality"),
}


@pytest.mark.parametrize("case", sorted(EDGE_CASES))
@pytest.mark.parametrize("method", ["opsmind", "seasonal_naive", "ets", "mstl", "theta"])
def test_awkward_series_give_a_result_and_a_note(case: str, method: str) -> None:
    values, expected_note = EDGE_CASES[case]
    fc = FORECASTERS.build(method).fit(frame(values)).predict(12)
    assert np.isfinite(fc.mean).all()
    for level in (80, 95):
        assert np.isfinite(fc.lower(level)).all() and np.all(fc.lower(level) <= fc.upper(level) + 1e-9)
    assert any(expected_note in n for n in fc.notes), fc.notes


def test_constant_and_nonnegative_series() -> None:
    fc = default_forecaster().fit(frame(np.full(100, 7.5))).predict(5)
    np.testing.assert_allclose(fc.mean, 7.5)
    # A series that never goes negative gets no negative forecast or bound; a negative one may.
    rng = np.random.default_rng(7)
    counts = rng.poisson(0.3, 24 * 8).astype(float)
    fc = default_forecaster().fit(frame(counts)).predict(24)
    assert fc.mean.min() >= 0 and fc.lower(95).min() >= 0
    neg = default_forecaster().fit(frame(seasonal(24 * 8, 24, 8, level=-20.0))).predict(24)
    assert neg.mean.max() < 0


def test_opsmind_is_accurate_on_a_clean_seasonal_series() -> None:
    y = seasonal(24 * 15, 24, 9, noise=0.5)
    train, test = y[:-24], y[-24:]
    model = default_forecaster().fit(frame(train))
    fc = model.predict(24)
    naive_mae = np.mean(np.abs(train[-1] - test))
    assert np.mean(np.abs(fc.mean - test)) < 0.4 * naive_mae
    assert isinstance(model, Ensemble)
    w = model.weights(24)
    assert sum(w.values()) == pytest.approx(1.0)
    assert w.get("naive", 0.0) < 0.2  # the backtest sees that the last value is a poor daily forecast


def test_intervals_cover_at_the_stated_rate() -> None:
    hits = {80: [], 95: []}  # type: dict[int, list[float]]
    for seed in range(16):
        y = seasonal(24 * 12 + 24, 24, 100 + seed, noise=1.0)
        fc = default_forecaster().fit(frame(y[:-24])).predict(24)
        for level in hits:
            inside = (y[-24:] >= fc.lower(level)) & (y[-24:] <= fc.upper(level))
            hits[level].append(float(inside.mean()))
    assert 0.70 <= np.mean(hits[80]) <= 0.90
    assert 0.90 <= np.mean(hits[95]) <= 0.99


# -- CLI -------------------------------------------------------------------------------------------------------------


@pytest.fixture
def csv_file(tmp_path: Path) -> Path:
    n = 24 * 6 * 4  # 6 days of 15-minute data
    ts = pd.date_range("2024-03-01", periods=n, freq="15min")
    y = seasonal(n, 96, 11)
    path = tmp_path / "load.csv"
    pd.DataFrame({"timestamp": ts.strftime("%Y-%m-%dT%H:%M:%SZ"), "rps": y}).to_csv(path, index=False)
    return path


def test_cli_table_json_and_plot(csv_file: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    png = tmp_path / "out.png"
    res = runner.invoke(app, ["forecast", str(csv_file), "--horizon", "2h", "--plot", str(png)])
    assert res.exit_code == 0, res.output
    assert "opsmind forecast of rps: 8 steps" in res.output
    assert "daily seasonality found" in res.output
    assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    res = runner.invoke(app, ["forecast", str(csv_file), "--horizon", "1h", "--step", "30m", "--format", "json",
                              "--method", "seasonal_naive"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["method"] == "seasonal_naive" and len(out["forecast"]) == 2
    assert set(out["forecast"][0]) == {"timestamp", "mean", "lower_80", "upper_80", "lower_95", "upper_95"}
    res = runner.invoke(app, ["forecast", str(csv_file), "--horizon", "45m", "--format", "csv"])
    assert res.exit_code == 0 and res.stdout.splitlines()[0].startswith("timestamp,mean,lower_80")
    assert len(res.stdout.splitlines()) == 4


def test_cli_errors(tmp_path: Path, csv_file: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(app, ["forecast", str(tmp_path / "missing.csv")])
    assert res.exit_code == 2 and "error:" in res.output
    two = tmp_path / "two.csv"
    pd.DataFrame({"timestamp": pd.date_range("2024-01-01", periods=5, freq="1h"), "a": range(5),
                  "b": range(5)}).to_csv(two, index=False)
    res = runner.invoke(app, ["forecast", str(two)])
    assert res.exit_code == 2 and "choose one with --column" in res.output
    res = runner.invoke(app, ["forecast", str(two), "--column", "b", "--horizon", "2h"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["forecast", str(csv_file), "--horizon", "soon"])
    assert res.exit_code == 2 and "duration" in res.output
    res = runner.invoke(app, ["forecast"])
    assert res.exit_code == 2 and "FILE or --prometheus" in res.output


# -- benchmark -------------------------------------------------------------------------------------------------------


def test_bench_on_given_files(tmp_path: Path) -> None:
    from opsmind.bench.forecast import METHODS, BenchSettings, load_series_files, run_forecast_bench

    n = 288 * 5
    path = tmp_path / "s.csv"
    pd.DataFrame({"timestamp": pd.date_range("2024-01-01", periods=n, freq="5min"),
                  "value": seasonal(n, 288, 12)}).to_csv(path, index=False)
    flat = tmp_path / "flat.csv"
    pd.DataFrame({"timestamp": pd.date_range("2024-01-01", periods=n, freq="5min"), "value": 1.0}).to_csv(
        flat, index=False)
    settings = BenchSettings(fine_folds=2, coarse_folds=1)
    result = run_forecast_bench(load_series_files([path, flat]), data=str(tmp_path), workers=1, settings=settings)
    datasets = {r.dataset for r in result.results}
    assert datasets == {"all", "h=30m", "h=2h", "h=24h"}
    for row in result.results:
        assert row.method in METHODS
        assert set(row.metrics) == {"mase", "smape", "coverage_95", "fit_predict_s"}
    assert any("MASE scale is zero" in n and "flat" in n for n in result.notes)
    opsmind = next(r for r in result.results if r.method == "opsmind" and r.dataset == "all")
    assert 0 < opsmind.metrics["mase"] < 1.5


@pytest.mark.benchdata
def test_bench_on_a_subset_of_the_default_series() -> None:
    from opsmind.bench.forecast import BenchSettings, load_default_series, run_forecast_bench

    traces, nab = default_data_dir("traces"), default_data_dir("nab")
    if not (traces / "crane_dsp_cpu").is_dir() or not (nab / "data").is_dir():
        pytest.skip(f"benchmark data not found under {traces} and {nab}")
    series = load_default_series(traces, nab)
    assert len(series) == 41
    nasa = next(s for s in series if s.name == "nasa_http_1995")
    assert len(nasa.frame) == 5_059_950 and nasa.how == "sum"
    subset = [s for s in series if s.name.endswith(("iio_us-east-1_i-a2eb1cd9_NetworkIn", "ambient_temperature_"
                                                                                          "system_failure"))]
    result = run_forecast_bench(subset, data="subset", workers=1, settings=BenchSettings(fine_folds=1, coarse_folds=1))
    rows = {(r.method, r.dataset): r.metrics for r in result.results}
    assert np.isfinite(rows[("opsmind", "all")]["mase"])
    assert any("h=30m not evaluated" in n for n in result.notes)  # hourly series: 30 min is less than a step


def test_bench_command_writes_json_and_docs(tmp_path: Path) -> None:
    n = 24 * 4 * 3  # 3 days of 15-minute data
    path = tmp_path / "svc.csv"
    pd.DataFrame({"timestamp": pd.date_range("2024-01-01", periods=n, freq="15min"),
                  "value": seasonal(n, 96, 13)}).to_csv(path, index=False)
    out, docs = tmp_path / "r.json", tmp_path / "benchmarks.md"
    res = CliRunner().invoke(app, ["bench", "forecast", "--series", str(path), "--json", str(out), "--docs",
                                   str(docs), "--workers", "1"])
    assert res.exit_code == 0, res.output
    data = json.loads(out.read_text())
    assert data["benchmark"] == "forecast"
    methods = {r["method"] for r in data["results"] if r["dataset"] == "all"}
    assert methods == {"opsmind", "SeasonalNaive (statsforecast)", "AutoETS (statsforecast)", "MSTL (statsforecast)"}
    assert "<!-- bench:forecast:start -->" in docs.read_text()
    res = CliRunner().invoke(app, ["bench", "forecast", "--series", str(tmp_path / "nope.csv"), "--docs", str(docs)])
    assert res.exit_code == 2 and "error:" in res.output
