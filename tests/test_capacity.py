"""Capacity model: Erlang C against textbook closed forms, a direct sum and a discrete-event simulation; USL fit;
capacity estimation from simulated metrics; what-if; SLO-breach prediction."""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from opsmind.capacity import (
    MMc,
    erlang_c,
    estimate_capacity,
    fit_usl,
    max_rate_for_slo,
    mean_response,
    predict_breach,
    replicas_for_slo,
    response_quantile,
    response_tail,
    what_if,
)
from opsmind.core import ConfigError, DataError


def erlang_c_direct(c: int, a: float) -> float:
    """The textbook definition, summed term by term (fine for small c)."""
    top = a**c / math.factorial(c) * c / (c - a)
    return top / (sum(a**k / math.factorial(k) for k in range(c)) + top)


@pytest.mark.parametrize("rho", [0.1, 0.5, 0.9, 0.99])
def test_erlang_c_mm1_and_mm2_closed_forms(rho: float) -> None:
    assert erlang_c(1, rho) == pytest.approx(rho, rel=1e-12)  # M/M/1: P(wait) = rho
    assert erlang_c(2, 2 * rho) == pytest.approx(2 * rho**2 / (1 + rho), rel=1e-12)  # M/M/2


def test_erlang_c_textbook_values_and_direct_sum() -> None:
    # Call centre exercise: one call a minute, 3 minutes to handle, 5 agents: 76.4 % are answered at once.
    assert erlang_c(5, 3.0) == pytest.approx(0.2362, abs=5e-5)
    rng = np.random.default_rng(0)
    for _ in range(50):
        c = int(rng.integers(1, 40))
        a = float(rng.uniform(0.01, 0.999)) * c
        assert erlang_c(c, a) == pytest.approx(erlang_c_direct(c, a), rel=1e-9)
    # vectorised, and large c (the direct sum would overflow) stays a probability
    p = np.asarray(erlang_c(np.array([1, 10, 500]), np.array([0.5, 8.0, 480.0])))
    assert p.shape == (3,) and np.all((p > 0) & (p < 1))
    assert erlang_c(3, 3.0) == 1.0 and erlang_c(3, 7.0) == 1.0  # unstable: everyone waits


def test_mm1_response_time_is_exponential() -> None:
    lam, mu = 3.0, 5.0
    assert mean_response(lam, mu, 1) == pytest.approx(1 / (mu - lam))
    for q in (0.5, 0.95, 0.99):
        assert response_quantile(q, lam, mu, 1) == pytest.approx(-math.log(1 - q) / (mu - lam), rel=1e-8)


def simulate_mmc(lam: float, mu: float, c: int, n: int, seed: int) -> tuple[npt.NDArray[np.float64], ...]:
    rng = np.random.default_rng(seed)
    arrivals = np.cumsum(rng.exponential(1 / lam, n))
    service = rng.exponential(1 / mu, n)
    free = [0.0] * c
    wait = np.empty(n)
    for i in range(n):
        t_free = heapq.heappop(free)
        start = max(arrivals[i], t_free)
        wait[i] = start - arrivals[i]
        heapq.heappush(free, start + service[i])
    return wait, wait + service


def test_formulas_match_a_discrete_event_simulation() -> None:
    lam, mu, c = 8.0, 1.0, 10
    wait, resp = simulate_mmc(lam, mu, c, 200_000, seed=3)
    wait, resp = wait[20_000:], resp[20_000:]  # drop the warm-up from an empty system
    q = MMc(lam, mu, c)
    assert float(np.mean(wait > 0)) == pytest.approx(q.p_wait, abs=0.02)
    assert float(np.mean(resp)) == pytest.approx(q.mean_response, rel=0.03)
    for t in (1.0, 2.0, 4.0):
        assert float(np.mean(resp > t)) == pytest.approx(q.tail(t), abs=0.01)
    assert float(np.quantile(resp, 0.95)) == pytest.approx(q.quantile(0.95), rel=0.04)


def test_tail_continuous_where_theta_equals_mu() -> None:
    # c mu - lam == mu: the hypoexponential fraction switches to its limit form; both sides must agree.
    exact = float(response_tail(1.0, 1.0, 1.0, 2))
    near = float(response_tail(1.0, 1.0 + 1e-6, 1.0, 2))
    assert exact == pytest.approx(near, rel=1e-4)


def test_slo_inversions_are_consistent() -> None:
    mu, slo = 10.0, 0.5
    rate = max_rate_for_slo(mu, 4, slo)
    assert float(response_quantile(0.95, rate, mu, 4)) == pytest.approx(slo, rel=1e-6)
    assert float(response_quantile(0.95, rate * 1.01, mu, 4)) > slo
    c = replicas_for_slo(100.0, mu, slo)
    assert float(response_quantile(0.95, 100.0, mu, c)) <= slo < float(response_quantile(0.95, 100.0, mu, c - 1))
    assert replicas_for_slo(100.0, mu, slo, max_utilisation=0.5) >= 20
    with pytest.raises(ConfigError, match="below the service time"):
        replicas_for_slo(10.0, mu, 0.2)  # p95 of one 100 ms request is 300 ms
    assert max_rate_for_slo(mu, 4, 0.2) == 0.0


@pytest.mark.parametrize("bad", [dict(lam=-1.0, mu=1.0, c=1), dict(lam=1.0, mu=0.0, c=1), dict(lam=1.0, mu=1.0, c=0),
                                 dict(lam=1.0, mu=1.0, c=1.5), dict(lam=math.nan, mu=1.0, c=1)])
def test_bad_parameters_are_config_errors(bad: dict[str, float]) -> None:
    with pytest.raises(ConfigError):
        MMc(**bad)  # type: ignore[arg-type]


def test_unstable_queue_gives_infinite_latency_not_an_error() -> None:
    w = what_if(1000.0, 2, mu=10.0, slo_latency_s=0.5)
    assert math.isinf(w.p95_s) and w.compliant is False and w.breach_probability == 1.0
    assert w.replicas_needed is not None and w.replicas_needed >= 100
    assert any("overloaded" in n for n in w.notes)


def test_usl_recovers_parameters_and_rejects_too_few_counts() -> None:
    rng = np.random.default_rng(1)
    n = np.repeat(np.arange(1, 33), 3)
    x = 50.0 * n / (1 + 0.03 * (n - 1) + 0.0005 * n * (n - 1)) * rng.normal(1.0, 0.01, len(n))
    fit = fit_usl(n, x)
    assert fit.lam == pytest.approx(50.0, rel=0.03)
    assert fit.sigma == pytest.approx(0.03, abs=0.005)
    assert fit.kappa == pytest.approx(0.0005, rel=0.2)
    assert fit.peak_replicas == pytest.approx(math.sqrt(0.97 / 0.0005), rel=0.15)
    assert fit.r2 > 0.99
    with pytest.raises(DataError, match="3 or more distinct replica counts, have 2"):
        fit_usl([1, 1, 2, 2], [10, 11, 19, 20])
    linear = fit_usl([1, 2, 4, 8], [10, 20, 40, 80])
    assert linear.kappa == pytest.approx(0.0, abs=1e-6) and linear.peak_replicas > 1000  # no peak in sight


def test_capacity_from_simulated_service_utilisation() -> None:
    """The simulator's services have a known capacity per replica: concurrency / service time."""
    from opsmind.sim.system import System

    system = System(seed=4)
    times = 86400.0 + 60.0 * np.arange(1, 24 * 60)
    g = system.advance(times, 60.0)
    for k, svc in enumerate(system.topology.services[:3]):
        est = estimate_capacity(g["rate_rps"][:, k], np.full(len(times), svc.replicas),
                                utilisation=g["utilisation"][:, k])
        assert est.mu == pytest.approx(svc.concurrency / svc.base_latency_s, rel=0.05), svc.name
        assert est.method == "utilisation"


def test_capacity_from_latency_of_an_mmc_service() -> None:
    rng = np.random.default_rng(2)
    mu = 12.0
    replicas = rng.integers(2, 9, 500)
    lam = replicas * mu * rng.uniform(0.2, 0.9, 500)
    lat = np.asarray(mean_response(lam, mu, replicas)) * rng.normal(1.0, 0.02, 500)
    est = estimate_capacity(lam, replicas, latency_s=lat)
    assert est.mu == pytest.approx(mu, rel=0.02)
    p95 = np.asarray(response_quantile(0.95, lam[:100], mu, replicas[:100]))
    assert estimate_capacity(lam[:100], replicas[:100], latency_s=p95, latency_stat="p95").mu == pytest.approx(mu)


def test_capacity_bad_input_is_located() -> None:
    with pytest.raises(DataError, match="different lengths"):
        estimate_capacity([1, 2, 3], [1, 2], utilisation=[0.5, 0.5, 0.5], where="svc.csv")
    with pytest.raises(DataError, match="need 3 samples"):
        estimate_capacity([0, 0, 0], [1, 1, 1], latency_s=[0.1, 0.1, 0.1])
    with pytest.raises(ConfigError):
        estimate_capacity([1, 2, 3], [1, 1, 1])


@dataclass
class FakeForecast:
    timestamps: npt.NDArray[np.datetime64]
    mean: npt.NDArray[np.float64]
    hi: npt.NDArray[np.float64]

    def upper(self, level: int) -> npt.NDArray[np.float64]:
        assert level == 95
        return self.hi


def ramp(now: np.datetime64, start: float, slope_per_min: float) -> FakeForecast:
    ts = now + np.arange(1, 121).astype("timedelta64[m]")
    mean = (start + slope_per_min * np.arange(1, 121)).astype(np.float64)
    return FakeForecast(ts.astype("datetime64[ns]"), mean, mean * 1.1)


def test_breach_predicted_when_the_ramp_crosses_the_limit() -> None:
    now = np.datetime64("2026-01-01T12:00")
    mu, c, slo = 10.0, 4, 0.5
    limit = max_rate_for_slo(mu, c, slo)  # ~32.6 req/s: the latency limit is below 85 % utilisation (34)
    fc = ramp(now, 20.0, (limit - 20.0) / 30.0)  # the mean reaches the limit 30 minutes from now
    pred = predict_breach(fc, now=now, mu=mu, replicas=c, slo_latency_s=slo)
    assert pred.breach and pred.bottleneck == "latency"
    assert pred.minutes_ahead is not None and 20 <= pred.minutes_ahead <= 30
    assert pred.probability >= 0.5 and pred.replicas_needed is not None and pred.replicas_needed > c
    assert "breach predicted" in pred.explanation
    calm = predict_breach(ramp(now, 10.0, 0.0), now=now, mu=mu, replicas=c, slo_latency_s=slo)
    assert not calm.breach and calm.probability < 0.01 and "no SLO breach" in calm.explanation
    util = predict_breach(fc, now=now, mu=mu, replicas=c, slo_latency_s=5.0, max_utilisation=0.6)
    assert util.bottleneck == "utilisation" and util.limit_rps == pytest.approx(24.0)
    with pytest.raises(DataError, match="no step"):
        predict_breach(fc, now=now + np.timedelta64(10, "h"), mu=mu, replicas=c, slo_latency_s=slo)


def test_capacity_command_on_simulated_metrics(tmp_path: Path) -> None:
    import json

    import pandas as pd
    from typer.testing import CliRunner

    from opsmind.cli.main import app
    from opsmind.sim.system import System

    system = System(seed=1)
    t = 86400.0 + 60.0 * np.arange(1, 1440)
    g = system.advance(t, 60.0)
    svc = system.topology.services[0]
    # the replica count changes over the day so the USL fit has several counts to work with
    replicas = np.where(t % 86400 < 28800, svc.replicas, svc.replicas + 1) + (t % 86400 > 57600)
    path = tmp_path / "frontend.csv"
    pd.DataFrame({"timestamp": pd.to_datetime(t, unit="s"), "rate_rps": g["rate_rps"][:, 0], "replicas": replicas,
                  "latency_mean_ms": g["latency_mean_s"][:, 0] * 1000}).to_csv(path, index=False)
    runner = CliRunner()
    res = runner.invoke(app, ["capacity", str(path), "--load", "1200", "--replicas", "6", "--concurrency", "8",
                              "--format", "json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["capacity"]["method"].startswith("latency")
    assert out["what_if"]["replicas"] == 6 and out["what_if"]["utilisation"] > 0
    assert out["usl"] is not None and out["usl"]["n_points"] == 3
    table = runner.invoke(app, ["capacity", str(path), "--load", "5000", "--replicas", "2", "--mu", "500",
                                "--concurrency", "8", "--slo", "100ms"])
    assert table.exit_code == 0, table.output
    assert "misses the SLO" in table.output and "overloaded" in table.output
    bad = runner.invoke(app, ["capacity", str(path), "--slo", "fast"])
    assert bad.exit_code == 2 and "cannot read 'fast' as a duration" in bad.output
    (tmp_path / "empty.csv").write_text("timestamp,rate_rps,replicas\n")
    empty = runner.invoke(app, ["capacity", str(tmp_path / "empty.csv")])
    assert empty.exit_code == 2 and "error:" in empty.output


def test_capacity_json_is_strict_json_when_overloaded(tmp_path: Path) -> None:
    import json

    from typer.testing import CliRunner

    from opsmind.cli.main import app

    path = tmp_path / "svc.csv"
    path.write_text("timestamp,rps,pods,util\n" + "".join(
        f"2026-01-01T00:{m:02d}:00Z,{100 + m},4,{(100 + m) / 400:.4f}\n" for m in range(30)))
    res = CliRunner().invoke(app, ["capacity", str(path), "--load", "5000", "-f", "json"])
    assert res.exit_code == 0, res.output

    def no_constants(name: str) -> None:
        raise AssertionError(f"not strict JSON: {name}")

    out = json.loads(res.output, parse_constant=no_constants)
    assert out["capacity"]["mu_rps"] == pytest.approx(100.0, rel=1e-3) and out["what_if"]["p95_s"] is None
