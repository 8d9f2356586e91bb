"""Replay simulator, trace preparation, rolling forecast, opsmind's policy and the peers, CLI and bench wiring."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from opsmind.bench.report import default_data_dir
from opsmind.capacity.queueing import max_rate_for_slo, response_quantile
from opsmind.cli.main import app
from opsmind.core import ConfigError, DataError, Frame
from opsmind.scale import (
    POLICIES,
    CapacityTable,
    EffectiveHPAPolicy,
    HoltWintersPolicy,
    HPAPolicy,
    PredictivePolicy,
    RollingForecast,
    ServiceModel,
    carry_backlog,
    make_policy,
    prepare_trace,
    replay,
    simulate,
)
from opsmind.scale.base import LoadHistory

MODEL = ServiceModel()
DAY = 1440


def daily(days: float, *, peak: float = 200.0, noise: float = 0.02, seed: int = 0, ramp: bool = False) -> Frame:
    """A 1-minute load with a daily cycle (trough at night, peak at 15:00), and optionally a fast morning ramp."""
    n = int(days * DAY)
    t = np.arange(n)
    phase = (t % DAY) / DAY
    shape = 0.2 + 0.8 * (0.5 - 0.5 * np.cos(2 * np.pi * (phase - 0.125)))
    if ramp:  # a steep step up at 08:00 each day, down at 20:00
        shape = np.where((phase > 8 / 24) & (phase < 20 / 24), 1.0, 0.25)
    y = peak * shape * np.exp(np.random.default_rng(seed).normal(0, noise, n))
    ts = np.datetime64("2024-01-01T00:00", "ns") + t * np.timedelta64(60, "s")
    return Frame(ts, y.reshape(-1, 1), ("rps",), "synthetic")


# -- capacity and the replay --------------------------------------------------------------------------------------


def test_capacity_table_matches_the_queueing_model() -> None:
    tb = CapacityTable(MODEL, 60)
    for c in (1, 3, 10, 25, 60):
        assert tb.max_rate(c) == pytest.approx(max_rate_for_slo(10.0, c, 0.5, 0.95), rel=1e-7)
    lam = 0.999 * tb.max_rate(25)
    assert tb.replicas(lam) == 25 and tb.replicas(tb.max_rate(25) * 1.0001) == 26
    assert float(response_quantile(0.95, lam, 10.0, 25)) <= 0.5 < float(response_quantile(0.95, lam, 10.0, 24))
    assert tb.replicas(0.0) == 1 and tb.replicas(float("nan")) == 1


def test_carry_backlog_drains_and_drops() -> None:
    backlog, offered, dropped, final = carry_backlog(np.array([10.0, 30.0, 10.0, 10.0]), np.full(4, 20.0), 1.0, 0.25)
    assert offered.tolist() == [10.0, 30.0, 15.0, 10.0]
    assert backlog.tolist() == [0.0, 5.0, 0.0, 0.0]
    assert dropped.tolist() == [0.0, 5.0, 0.0, 0.0]  # 10 in excess, at most 20 x 0.25 = 5 may wait
    assert float(final) == 0.0


def test_replay_scores_a_fixed_fleet_exactly() -> None:
    class Fixed(HPAPolicy):
        name = "fixed"

        def decide(self, state):  # type: ignore[no-untyped-def]
            return self._decision(state, 10, "fixed", {})

    tb = CapacityTable(MODEL, 200)
    load = np.full(120, 0.5 * tb.max_rate(10))
    load[60:70] = 1.5 * tb.max_rate(10)  # 10 minutes beyond what 10 replicas serve within the SLO
    t = 1.7e9 + 60.0 * np.arange(120)
    res = replay(t, load, Fixed(), MODEL, initial_replicas=10, warmup_steps=20)
    m = res.metrics
    assert m["replica_hours"] == pytest.approx(100 * 10 / 60)
    assert m["scaling_actions"] == 0
    assert 10 <= m["slo_violation_min"] <= 12  # the backlog may spill over a minute or two
    demand = tb.replicas_many(load)
    assert m["tau_u"] == pytest.approx(np.mean(demand[20:] > 10) * 100)
    assert m["theta_o"] == pytest.approx(np.mean(np.maximum(10 - demand[20:], 0) / demand[20:]) * 100)


def test_replay_rejects_bad_input_and_scores_nothing_when_all_is_warmup() -> None:
    t = 1.7e9 + 60.0 * np.arange(10)
    with pytest.raises(DataError, match="negative"):
        replay(t, -np.ones(10), HPAPolicy(), MODEL)
    with pytest.raises(DataError):
        replay(t, np.ones(9), HPAPolicy(), MODEL)
    res = replay(t, np.full(10, 50.0), HPAPolicy(), MODEL, warmup_steps=20)
    assert all(math.isnan(v) for k, v in res.metrics.items() if k != "scaling_actions")
    assert res.notes


def test_hpa_follows_a_load_step_after_the_startup_delay() -> None:
    tb = CapacityTable(MODEL, 200)
    load = np.r_[np.full(30, 0.7 * 10 * 10), np.full(60, 0.7 * 10 * 20)]
    res = replay(1.7e9 + 60.0 * np.arange(90), load, HPAPolicy(), MODEL, initial_replicas=10)
    assert res.replicas[29] == 10
    # Minute 30 shows the step; the HPA asks for replicas at its end; they serve 2 minutes later.
    assert res.replicas[31] > 10 and res.ready[32] == 10
    assert res.ready[33] == res.replicas[31] and res.violation[30]
    assert 0.63 <= load[-1] / (res.ready[-1] * 10) <= 0.77  # settles in the tolerance band around 70 %
    assert res.demand[-1] == tb.replicas(load[-1])


# -- traces --------------------------------------------------------------------------------------------------------


def test_prepare_trace_grid_gaps_outages_negatives_and_size() -> None:
    f = daily(3)
    y = f.values[:, 0].copy()
    y[1000:1200] = 0.0  # a 200-minute outage in an otherwise positive series
    y[50] = -5.0
    ts = np.delete(f.timestamps, np.arange(2000, 2010))  # a 10-minute hole in the timestamps
    y = np.delete(y, np.arange(2000, 2010))
    tr = prepare_trace(Frame(ts, y.reshape(-1, 1), ("rps",), "x"), MODEL, size_replicas=25)
    assert tr.usable and tr.load.shape[0] == 3 * DAY
    assert np.isnan(tr.load[1000:1200]).all() and np.isnan(tr.load[2000:2010]).all() and np.isnan(tr.load[50])
    text = " ".join(tr.notes)
    assert "outage" in text and "negative" in text and "without data" in text
    finite = tr.load[np.isfinite(tr.load)]
    assert CapacityTable(MODEL, 100).replicas(float(np.quantile(finite, 0.99))) == 25


def test_prepare_trace_coarse_series_is_held_and_bad_series_explained() -> None:
    ts = np.datetime64("2024-01-01", "ns") + np.arange(100) * np.timedelta64(300, "s")
    tr = prepare_trace(Frame(ts, np.arange(1.0, 101.0).reshape(-1, 1), ("v",)), MODEL)
    assert tr.load.shape[0] == 500 and tr.load[0] == tr.load[4] != tr.load[5]
    zeros = prepare_trace(Frame(ts, np.zeros((100, 1)), ("v",)), MODEL)
    assert not zeros.usable and "zero" in zeros.notes[-1]
    one = prepare_trace(Frame(ts[:1], np.ones((1, 1)), ("v",)), MODEL)
    assert not one.usable and "at least two" in one.notes[-1]
    with pytest.raises(DataError, match="no column"):
        prepare_trace(Frame(ts, np.ones((100, 1)), ("v",)), MODEL, column="nope")


# -- rolling forecast and opsmind's policy --------------------------------------------------------------------


def test_rolling_forecast_is_causal_and_calibrated() -> None:
    f = daily(4, noise=0.05)
    t, y = f.seconds(), f.values[:, 0]
    k = 3 * DAY + 600
    feed = RollingForecast("seasonal_naive", refit_every_s=6 * 3600.0)
    fc = feed.at(LoadHistory(t[: k + 1], y[: k + 1]), 60.0, 6)
    assert fc is not None and fc.calibrated and len(fc.samples) == 6
    changed = y.copy()
    changed[k + 1:] *= 10.0  # the future must not matter
    feed2 = RollingForecast("seasonal_naive", refit_every_s=6 * 3600.0)
    fc2 = feed2.at(LoadHistory(t[: k + 1], changed[: k + 1]), 60.0, 6)
    assert fc2 is not None and np.array_equal(fc.mean, fc2.mean) and np.array_equal(fc.upper, fc2.upper)
    assert np.all(fc.upper >= fc.mean)
    # The upper bound (90 % interval -> 95th percentile) covers about 95 % of the next minutes.
    hits = []
    for j in range(k, k + 600, 7):
        g = feed.at(LoadHistory(t[: j + 1], y[: j + 1]), 60.0, 1)
        assert g is not None
        hits.append(y[j + 1] <= g.upper[0])
    assert 0.85 <= float(np.mean(hits)) <= 1.0
    assert feed.at(LoadHistory(t[:10], y[:10]), 60.0, 3) is None  # less than an hour of history


def test_opsmind_scales_out_ahead_of_a_daily_ramp_and_beats_hpa() -> None:
    tr = prepare_trace(daily(5, ramp=True, noise=0.03), MODEL)
    hpa = replay(tr.t, tr.load, HPAPolicy(), MODEL, warmup_steps=2 * DAY)
    ops = replay(tr.t, tr.load, PredictivePolicy(forecaster="seasonal_naive"), MODEL, warmup_steps=2 * DAY)
    assert ops.metrics["slo_violation_min"] <= 0.5 * hpa.metrics["slo_violation_min"]
    assert ops.metrics["replica_hours"] <= 1.05 * hpa.metrics["replica_hours"]
    # Ahead of the 08:00 step on day 4 the replicas are already there.
    at_eight = 3 * DAY + 8 * 60 + 1
    assert ops.ready[at_eight] >= ops.demand[at_eight]


def test_opsmind_decisions_carry_their_evidence_and_never_scale_in_blind() -> None:
    tr = prepare_trace(daily(3), MODEL)
    load = tr.load.copy()
    load[2 * DAY: 2 * DAY + 120] = np.nan  # two hours without observations
    res = replay(tr.t, load, PredictivePolicy(forecaster="seasonal_naive"), MODEL)
    outs = [a for a in res.actions if a.action == "scale_out" and "forecast_upper_rps" in a.evidence]
    assert outs, "expected forecast-driven scale-outs"
    ev = outs[-1].evidence
    for key in ("forecast_method", "forecast_mean_rps", "forecast_upper_rps", "quantile", "mu_rps", "slo",
                "capacity_rps_at_desired", "horizon_s"):
        assert key in ev
    text = outs[-1].explain()
    assert "forecast" in text and ("minimise" in text or "utilisation" in text)
    gap = [a for a in res.actions if 2 * DAY * 60 <= a.time_s - tr.t[0] < (2 * DAY + 120) * 60]
    assert all(a.action != "scale_in" for a in gap)
    assert all(MODEL.mu > 0 and 1 <= r <= 100 for r in res.replicas)


def test_peers_run_and_registry_round_trips() -> None:
    tr = prepare_trace(daily(3), MODEL)
    for name in ("hpa", "holt-winters", "effective", "opsmind"):
        pol = make_policy(name, MODEL)
        if isinstance(pol, PredictivePolicy | EffectiveHPAPolicy):
            pol.share_feed(RollingForecast("seasonal_naive"))
        res = replay(tr.t, tr.load, pol, MODEL, warmup_steps=DAY)
        assert math.isfinite(res.metrics["replica_hours"]) and res.metrics["replica_hours"] > 0
        spec = POLICIES.spec(pol)
        again = POLICIES.build(spec)
        assert type(again) is type(pol) and POLICIES.spec(again) == spec
    hw = HoltWintersPolicy()
    replay(tr.t, tr.load, hw, MODEL)
    assert hw.n_fits >= 1 and hw.prediction_ is not None
    with pytest.raises(ConfigError):
        POLICIES.build("nope")
    with pytest.raises(ConfigError):
        PredictivePolicy(min_replicas=5, max_replicas=2)
    with pytest.raises(ConfigError):
        ServiceModel(mu=10.0, slo_latency_s=0.1)  # below the service time alone


def test_simulate_short_and_unusable_traces_explain_instead_of_failing() -> None:
    short = daily(0.05)
    trace, res = simulate(short, "opsmind", MODEL)
    assert res is not None and any("warm-up" in n for n in trace.notes)
    ts = short.timestamps
    trace, res = simulate(Frame(ts, -np.ones((len(ts), 1)), ("v",)), "hpa", MODEL)
    assert res is None and not trace.usable


# -- CLI and bench ---------------------------------------------------------------------------------------------------


def test_cli_simulate_json_and_actions(tmp_path: Path) -> None:
    f = daily(2.2)
    csv = tmp_path / "load.csv"
    pd.DataFrame({"timestamp": pd.to_datetime(f.timestamps), "value": f.values[:, 0]}).to_csv(csv, index=False)
    actions = tmp_path / "actions.yaml"
    r = CliRunner().invoke(app, ["scale", "simulate", str(csv), "--policy", "hpa", "--format", "json",
                                 "--warmup", "1", "--actions", str(actions)])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["policy"] == "hpa" and out["metrics"]["replica_hours"] > 0
    assert set(out["metrics"]) >= {"slo_violation_min", "replica_hours", "scaling_actions", "theta_u", "theta_o"}
    assert "action:" in actions.read_text()
    bad = CliRunner().invoke(app, ["scale", "simulate", str(tmp_path / "missing.csv")])
    assert bad.exit_code == 2 and "error:" in bad.output
    bad = CliRunner().invoke(app, ["scale", "simulate", str(csv), "--slo", "0.1"])
    assert bad.exit_code == 2 and "service time" in bad.output
    plan = CliRunner().invoke(app, ["scale", "apply", "-d", "web", "-r", "4"])
    assert plan.exit_code == 0 and json.loads(plan.stdout)["status"] == "dry_run"


@pytest.mark.benchdata
def test_bench_autoscale_on_one_trace(tmp_path: Path) -> None:
    from opsmind.bench.autoscale import METHODS, default_traces, run_trace

    traces = default_data_dir("traces")
    if not (traces / "crane_dsp_cpu").is_dir():
        pytest.skip(f"benchmark traces not found at {traces}")
    specs = {s.name: s for s in default_traces(traces, default_data_dir("nab"))}
    assert "nasa_http_1995" in specs and "crane_dsp_cpu/input0" in specs
    run = run_trace(specs["crane_dsp_cpu/input0"])
    assert set(run.metrics) == set(METHODS)
    for m in run.metrics.values():
        assert m["replica_hours"] > 0 and m["slo_violation_min"] >= 0
        assert set(m) >= {"slo_violation_min", "replica_hours", "scaling_actions", "theta_u", "theta_o"}
    assert run.metrics[METHODS[0]]["violation_vs_hpa"] == 1.0
