"""Rightsizing: VPA and KRR formulas against hand-computed values, opsmind's strategy, undefined cases, replay
metrics, prices and machines, report rows, patches, the CLI and the benchmark harness on generated data."""

from __future__ import annotations

import gzip
import json
import math
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from kubernetes.utils import parse_quantity as _parse_quantity
from typer.testing import CliRunner

from opsmind.bench.report import default_data_dir
from opsmind.bench.rightsize import METHODS, default_workloads, load_trace, run_rightsize
from opsmind.cli.main import app
from opsmind.core import ConfigError, DataError, FloatArray, Frame
from opsmind.pricing import builtin_catalog, load_catalog, shape_from_name
from opsmind.pricing.catalog import GIB, UnitPrices
from opsmind.rightsize import (
    RECOMMENDERS,
    Recommendation,
    Resources,
    Schedule,
    Undefined,
    WorkloadUsage,
    build_recommender,
    profile,
)
from opsmind.rightsize.aware import risk_schedule
from opsmind.rightsize.evaluate import evaluate
from opsmind.rightsize.patch import workload_patches
from opsmind.rightsize.report import rightsize_rows

MIB = 1024.0**2
T0 = 1_704_067_200.0  # 2024-01-01 00:00 UTC (a Monday)
PRICES = UnitPrices("test", vcpu_hour=0.04, gib_hour=0.005)


def usage(cpu: FloatArray | list[float], step_s: float = 60.0, memory: FloatArray | list[float] | None = None,
          start: float = T0, **kw: object) -> WorkloadUsage:
    """A one-pod workload with samples every ``step_s`` from ``start``."""
    c = np.asarray(cpu, dtype=np.float64)
    c = c[:, None] if c.ndim == 1 else c
    ts = (start + step_s * np.arange(c.shape[0])).astype("datetime64[s]").astype("datetime64[ns]")
    cols = tuple(f"pod-{j}" for j in range(c.shape[1]))
    mem = None
    if memory is not None:
        m = np.asarray(memory, dtype=np.float64)
        mem = Frame(ts, m[:, None] if m.ndim == 1 else m, cols, "w")
    return WorkloadUsage(name="w", cpu=Frame(ts, c, cols, "w"), memory=mem, workload="w", **kw)  # type: ignore[arg-type]


def cpu_bucket_end(cores: float) -> float:
    """By hand: the end of VPA's CPU bucket holding ``cores`` (first bucket 0.01, ratio 1.05)."""
    n = math.floor(math.log(cores / 0.01 * 0.05 + 1) / math.log(1.05))
    return 0.01 * (1.05 ** (n + 1) - 1) / 0.05


def mem_bucket_end(nbytes: float) -> float:
    n = math.floor(math.log(nbytes / 1e7 * 0.05 + 1) / math.log(1.05))
    return 1e7 * (1.05 ** (n + 1) - 1) / 0.05


def parse_quantity(text: str) -> Decimal:
    """Kubernetes' own quantity parser (typed wrapper)."""
    value: Decimal = _parse_quantity(text)  # type: ignore[no-untyped-call]
    return value


def defined(rec: Recommendation | Undefined) -> Recommendation:
    assert isinstance(rec, Recommendation), rec.explain()
    return rec


# ---- VPA -----------------------------------------------------------------------------------------------------


def test_vpa_constant_usage_target_bounds_and_confidence_by_hand() -> None:
    n = 2 * 1440  # two days at one sample a minute
    rec = defined(build_recommender("vpa").recommend(usage(np.full(n, 1.0))))
    base = int(cpu_bucket_end(1.0) * 1000)  # 1016 millicores: the end of the bucket, truncated
    target = base + int(base * 0.15)  # + 15 % margin, truncated like VPA's ResourceAmount
    assert (base, target) == (1016, 1168)
    assert rec.cpu_request == pytest.approx(target / 1000)
    conf = min((n - 1) / 1440, n / 1440)
    assert rec.evidence["confidence_days"] == pytest.approx(conf, abs=1e-4)
    assert rec.evidence["cpu_upper_bound"] == pytest.approx(int(target * (1 + 1 / conf)) / 1000)
    assert rec.evidence["cpu_lower_bound"] == pytest.approx(int(target * (1 + 0.001 / conf) ** -2) / 1000)
    assert rec.cpu_limit is None and rec.memory_request is None
    assert any("memory: undefined" in n for n in rec.notes)


def test_vpa_half_life_weights_the_newer_day_twice() -> None:
    # day 1 at 0.5 core, day 2 at 1.0 core: with a 24 h half-life day 2 holds ~2/3 of the weight, so P40
    # falls on 1.0; without decay it would fall on 0.5 (each day half the weight)
    cpu = np.r_[np.full(1440, 0.5), np.full(1440, 1.0)]
    data = usage(cpu)
    p40 = defined(build_recommender({"type": "vpa", "params": {"target_cpu_percentile": 0.4}}).recommend(data))
    p30 = defined(build_recommender({"type": "vpa", "params": {"target_cpu_percentile": 0.3}}).recommend(data))
    assert p40.cpu_request == pytest.approx((int(cpu_bucket_end(1.0) * 1000) * 115 // 100) / 1000, abs=0.0015)
    assert p30.cpu_request == pytest.approx((int(cpu_bucket_end(0.5) * 1000) * 115 // 100) / 1000, abs=0.0015)
    no_decay = build_recommender({"type": "vpa", "params": {"target_cpu_percentile": 0.4, "cpu_half_life": "1000d"}})
    assert defined(no_decay.recommend(data)).cpu_request == pytest.approx(p30.cpu_request)


def test_vpa_minimums_and_proportional_limits() -> None:
    tiny = defined(build_recommender("vpa").recommend(usage(np.full(1440, 0.001), memory=np.full(1440, 10 * MIB))))
    assert tiny.cpu_request == pytest.approx(0.025)  # pod minimum 25 millicores
    assert tiny.memory_request == pytest.approx(250 * MIB)  # pod minimum 250 MiB
    two = build_recommender({"type": "vpa", "params": {"containers_per_pod": 2}})
    assert defined(two.recommend(usage(np.full(1440, 0.001)))).cpu_request == pytest.approx(0.012)
    cur = Resources(cpu_request=0.5, cpu_limit=1.0, memory_request=200 * MIB, memory_limit=400 * MIB)
    rec = defined(build_recommender("vpa").recommend(usage(np.full(1440, 1.0), memory=np.full(1440, 300 * MIB),
                                                           current=cur)))
    assert rec.cpu_limit == pytest.approx(2 * rec.cpu_request)
    assert rec.memory_limit == pytest.approx(2 * (rec.memory_request or 0))


def test_vpa_memory_peaks_per_day_and_oom_bump_by_hand() -> None:
    mem = np.r_[np.full(1440, 300 * MIB), np.full(1440, 500 * MIB)]
    rec = defined(build_recommender("vpa").recommend(usage(np.full(2880, 0.2), memory=mem)))
    target = int(mem_bucket_end(500 * MIB))  # P90 of the two daily peaks (the newer weighs twice): 500 MiB's bucket
    assert rec.memory_request == pytest.approx(target + int(target * 0.15))
    assert rec.evidence["memory_peaks"] == 2
    # an OOM kill on day 2 with a 400 MiB request: used = max(400 MiB, 500 MiB peak) -> max(600, 600) MiB
    oom = defined(build_recommender("vpa").recommend(usage(np.full(2880, 0.2), memory=mem, oom_kills=(T0 + 2000 * 60,),
                                                           current=Resources(memory_request=400 * MIB))))
    bumped = int(mem_bucket_end(600 * MIB))
    assert oom.memory_request == pytest.approx(bumped + int(bumped * 0.15))


def test_vpa_short_history_widens_the_upper_bound() -> None:
    rec = defined(build_recommender("vpa").recommend(usage(np.full(720, 1.0))))  # 12 h: confidence 0.5 day
    assert rec.evidence["cpu_upper_bound"] == pytest.approx(3 * rec.cpu_request, rel=0.01)  # * (1 + 1/0.5)


# ---- KRR -----------------------------------------------------------------------------------------------------


def test_krr_simple_by_hand() -> None:
    cpu = np.arange(1, 201) / 100.0  # 0.01 .. 2.00 cores
    mem = np.linspace(1e8, 1e9, 200)
    rec = defined(build_recommender("krr-simple").recommend(usage(cpu, memory=mem)))
    # numpy/Prometheus linear quantile: rank 0.95 * 199 = 189.05 -> 1.90 + 0.05 * 0.01 = 1.9005 -> up to 1901m
    assert rec.cpu_request == pytest.approx(1.901)
    assert rec.cpu_limit is None
    assert rec.memory_request == pytest.approx(1.15e9) and rec.memory_limit == rec.memory_request


def test_krr_pods_minimums_and_not_enough_data() -> None:
    two = np.column_stack([np.full(300, 0.5), np.r_[np.full(286, 1.0), np.full(14, 3.0)]])
    rec = defined(build_recommender("krr-simple").recommend(usage(two)))
    assert rec.cpu_request == pytest.approx(1.0)  # per-pod P95 (rank 284.05 of 300: 1.0; and 0.5), the largest
    tiny = defined(build_recommender("krr-simple").recommend(usage(np.full(300, 1e-4), memory=np.full(300, 1e6))))
    assert tiny.cpu_request == pytest.approx(0.010) and tiny.memory_request == pytest.approx(100e6)
    few = build_recommender("krr-simple").recommend(usage(np.full(99, 1.0), step_s=300))
    assert isinstance(few, Undefined) and "99 CPU samples" in few.reason
    short = build_recommender("krr-simple").recommend(usage(np.full(150, 1.0), step_s=60))
    assert isinstance(short, Undefined) and "2.5 h of history" in short.reason


def test_krr_oomkill_option_uses_the_limit_it_was_killed_at() -> None:
    data = usage(np.full(300, 0.3), memory=np.full(300, 1e9), oom_kills=(T0 + 600,),
                 current=Resources(memory_limit=2e9))
    plain = defined(build_recommender("krr-simple").recommend(data))
    oom = defined(build_recommender({"type": "krr-simple", "params": {"use_oomkill_data": True}}).recommend(data))
    assert plain.memory_request == pytest.approx(1.15e9)
    assert oom.memory_request == pytest.approx(2.5e9) and "OOMKill detected" in oom.notes


# ---- undefined, never a crash ----------------------------------------------------------------------------------


@pytest.mark.parametrize("strategy", sorted(RECOMMENDERS))
def test_bad_data_gives_undefined_with_a_reason(strategy: str) -> None:
    rec = build_recommender(strategy)
    empty = WorkloadUsage("e", Frame(np.array([], dtype="datetime64[ns]"), np.zeros((0, 0)), (), "e"))
    cases = {
        "no CPU usage samples": empty,
        "every CPU usage sample is missing": usage(np.full(2000, np.nan)),
        "zero in every sample": usage(np.zeros(2000)),
        "negative": usage(np.r_[np.full(1999, 0.5), -1.0]),
    }
    for expected, data in cases.items():
        out = rec.recommend(data)
        assert isinstance(out, Undefined), (strategy, expected)
        assert expected in out.reason and out.explain().startswith("undefined, because")


def test_opsmind_undefined_for_short_history_and_crash_loops() -> None:
    rec = build_recommender("opsmind")
    short = rec.recommend(usage(np.full(600, 0.5)))
    assert isinstance(short, Undefined) and "under the 1 d minimum" in short.reason
    looping = rec.recommend(usage(np.full(2 * 1440, 0.5), restarts=40.0))
    assert isinstance(looping, Undefined) and "crash-looping" in looping.reason
    oom_restarts = rec.recommend(usage(np.full(2 * 1440, 0.5), restarts=2.0, oom_kills=(T0 + 600, T0 + 1200)))
    assert isinstance(oom_restarts, Recommendation)  # restarts explained by OOM kills are sized, with the bump


def test_settings_are_validated_with_the_field_named() -> None:
    with pytest.raises(ConfigError, match="risk_target"):
        build_recommender({"type": "opsmind", "params": {"risk_target": 2}})
    with pytest.raises(ConfigError, match="cpu_half_life"):
        build_recommender({"type": "vpa", "params": {"cpu_half_life": "soon"}})
    with pytest.raises(ConfigError, match="unknown rightsizing strategy"):
        build_recommender("nope")
    spec = build_recommender({"type": "krr-simple", "params": {"cpu_percentile": 90}}).spec()
    assert spec["type"] == "krr-simple" and spec["params"]["cpu_percentile"] == 90
    assert build_recommender(spec).spec() == spec


# ---- opsmind's strategy ---------------------------------------------------------------------------------------


def diurnal(days: int, seed: int = 0, step_s: float = 60.0) -> tuple[FloatArray, FloatArray]:
    rng = np.random.default_rng(seed)
    t = T0 + step_s * np.arange(int(days * 86400 / step_s))
    hour = (t % 86400) / 3600
    cpu = 0.2 + 0.8 * np.clip(np.sin((hour - 6) / 24 * 2 * np.pi), 0, None) + rng.gamma(2.0, 0.02, t.size)
    return np.asarray(t, dtype=np.float64), np.asarray(cpu, dtype=np.float64)


def test_opsmind_schedule_follows_the_day_within_the_risk_target() -> None:
    _, cpu = diurnal(8)
    rec = defined(build_recommender("opsmind").recommend(usage(cpu)))
    assert rec.pattern == "diurnal" and rec.workload_class == "web/API"
    sched = rec.cpu_schedule
    assert sched is not None and sched.values.shape == (24,)
    assert sched.at(np.array([T0 + 3 * 3600.0]))[0] < 0.5 < sched.at(np.array([T0 + 12 * 3600.0]))[0]
    assert sched.mean < rec.cpu_request  # the schedule reserves less on average than the static request
    share = float(rec.evidence["schedule_share_above_in_history"] or 0)
    assert share <= 0.01
    t = usage(cpu).cpu.seconds()
    assert np.mean(cpu > rec.cpu_request_at(t)) <= 0.01 + 1e-9
    assert rec.cpu_request == pytest.approx(np.percentile(cpu, 98))


def test_risk_schedule_trades_risk_for_reserved_cpu() -> None:
    t, cpu = diurnal(6, seed=3)
    means = []
    for risk in (0.005, 0.02, 0.1):
        values, share = risk_schedule(t, cpu, period_s=86400.0, block_s=3600.0, risk=risk, headroom=0.0)
        assert share <= risk
        means.append(values.mean())
    assert means[0] > means[1] > means[2]


def test_opsmind_static_for_aperiodic_and_memory_rules() -> None:
    rng = np.random.default_rng(1)
    cpu = rng.gamma(4.0, 0.05, 3 * 1440)
    mem = 300 * MIB + rng.normal(0, 5 * MIB, cpu.size)
    rec = defined(build_recommender("opsmind").recommend(usage(cpu, memory=mem)))
    assert rec.cpu_schedule is None and rec.cpu_limit is None
    assert rec.cpu_request == pytest.approx(np.percentile(cpu, 98))
    assert rec.memory_request is not None and rec.memory_request >= mem.max()  # never below the observed peak
    assert rec.memory_request == pytest.approx(mem.max() * 1.10) and rec.memory_limit == rec.memory_request
    killed = defined(build_recommender("opsmind").recommend(
        usage(cpu, memory=mem, oom_kills=(T0 + 3600.0,), current=Resources(memory_limit=512 * MIB))))
    assert killed.memory_request == pytest.approx(max(512 * MIB * 1.2, 612 * MIB))
    no_mem = defined(build_recommender("opsmind").recommend(usage(cpu)))
    assert no_mem.memory_request is None and any("memory: undefined" in n for n in no_mem.notes)


def test_opsmind_throttled_container_keeps_at_least_its_limit() -> None:
    _, cpu = diurnal(3)
    capped = np.minimum(cpu, 0.5)
    data = usage(capped, throttled_share=0.3, current=Resources(cpu_request=0.4, cpu_limit=0.5))
    rec = defined(build_recommender("opsmind").recommend(data))
    assert rec.cpu_request >= 0.5 and rec.cpu_schedule is None
    assert any("throttled" in n for n in rec.notes)


def test_opsmind_extrapolates_a_trend_only_with_two_weeks() -> None:
    rng = np.random.default_rng(2)
    days = 20
    t = T0 + 300.0 * np.arange(days * 288)
    cpu = (1.0 + 0.05 * (t - T0) / 86400) * (1 + 0.05 * rng.standard_normal(t.size))
    long = defined(build_recommender("opsmind").recommend(usage(cpu, step_s=300.0)))
    assert float(long.evidence["growth_factor"] or 0) > 1.2 and any("rising trend" in n for n in long.notes)
    short = defined(build_recommender("opsmind").recommend(usage(cpu[: 10 * 288], step_s=300.0)))
    assert short.evidence["growth_factor"] == 1.0


def test_classes_from_patterns() -> None:
    _, cpu = diurnal(4)
    assert profile(usage(cpu)).workload_class == "web/API"
    onoff = np.tile(np.r_[np.full(50, 2.0), np.full(150, 0.01)], 20)
    p = profile(usage(onoff))
    assert (p.pattern, p.workload_class) == ("on/off", "batch")
    steady_mem = profile(usage(np.full(3000, 0.1) + 0.001 * np.sin(np.arange(3000)), memory=np.full(3000, 4 * GIB)))
    assert steady_mem.workload_class == "cache" and "memory-bound" in steady_mem.pattern


# ---- replay metrics, schedule --------------------------------------------------------------------------------


def test_replay_metrics_by_hand() -> None:
    data = usage([1.0, 3.0, 2.0], memory=[100.0, 300.0, 300.0])
    rec = Recommendation("w", "x", cpu_request=2.0, cpu_limit=None, memory_request=200.0, memory_limit=250.0)
    m = evaluate(rec, data, PRICES)
    assert m["slack_pct"] == pytest.approx(100 * 1 / 6)  # (2-1) unused out of 3 * 2 reserved
    assert m["over_request_pct"] == pytest.approx(100 / 3)
    assert m["throttle_risk_min"] == pytest.approx(1.0)  # one 60 s sample above the request
    assert m["oom_risk"] == 1  # one crossing of the 250-byte limit
    assert m["monthly_cost"] == pytest.approx((2.0 * 0.04 + 200 / GIB * 0.005) * 730)
    sched = Recommendation("w", "x", 2.0, None, None, None,
                           cpu_schedule=Schedule(np.array([1.0, 4.0]), block_s=43200.0, period_s=86400.0))
    night = usage([1.0, 1.0], start=T0)
    assert evaluate(sched, night, PRICES)["slack_pct"] == pytest.approx(0.0)
    assert math.isnan(evaluate(sched, night, PRICES)["oom_risk"])


def test_weekly_schedule_phases_start_monday_utc() -> None:
    values = np.arange(168, dtype=np.float64)
    s = Schedule(values, block_s=3600.0, period_s=7 * 86400.0)
    assert s.at(np.array([T0, T0 + 86400 + 3600 * 5]))[0] == 0 and s.at(np.array([T0 + 86400 + 3600 * 5]))[0] == 29
    assert s.segments()[0][:2] == ("Mon 00:00", "Mon 01:00") and s.segments()[-1][1] == "Sun 24:00"
    with pytest.raises(ConfigError):
        Schedule(np.ones(5), block_s=3600.0, period_s=86400.0)


# ---- prices and machines ------------------------------------------------------------------------------------


def test_builtin_catalog_is_small_sourced_and_dated() -> None:
    cat = builtin_catalog()
    assert 20 <= len(cat) <= 100 and {"aws", "gcp", "azure"} <= set(cat.providers())
    assert all(m.source and m.date for m in cat.machines)
    assert all(u.source and u.date for u in cat.units)
    assert cat.find("m5.large").price_per_hour == 0.096 and cat.find("n2-standard-4").spot_price_per_hour == 0.047
    assert cat.find("Standard_D4s_v5", "azure").price_per_hour == 0.192
    aws = cat.unit_prices("aws")
    assert 0.02 < aws.vcpu_hour < 0.05 and 0.002 < aws.gib_hour < 0.006  # a fit, in the range of GCP's n2 prices
    assert cat.unit_prices().vcpu_hour == 0.031611


def test_cheapest_machine_covers_the_need_with_headroom() -> None:
    cat = builtin_catalog()
    m = cat.cheapest(3.0, 10 * GIB, provider="aws", headroom=0.15)
    # needs 3.45 vCPU and 11.5 GiB usable: 2-vCPU machines (1.93 allocatable) are out; t3.xlarge is the cheapest
    assert m is not None and m.name == "t3.xlarge"
    assert cat.cheapest(500.0, None, provider="aws") is None
    spot = cat.cheapest(3.0, 10 * GIB, provider="gcp", spot=True)
    assert spot is not None and spot.spot_price_per_hour is not None


def test_shapes_from_names() -> None:
    assert shape_from_name("e2-medium") == (2.0, 4.0)
    assert shape_from_name("n2-highcpu-8") == (8.0, 8.0)
    assert shape_from_name("Standard_D2pls_v6") == (2.0, 4.0)
    assert shape_from_name("Standard_B2ms") == (2.0, 8.0)


def test_catalog_loader_errors_name_the_row_and_column(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("machine_type,vcpu,memory_gib,price_per_hour\nm5.large,2,8,0.096\nm5.xlarge,4,16,cheap\n")
    with pytest.raises(DataError, match=r"bad.csv, row 3, column 'price_per_hour': 'cheap' is not a number"):
        load_catalog(bad)
    no_price = tmp_path / "np.csv"
    no_price.write_text("machine_type,vcpu\nm5.large,2\n")
    with pytest.raises(DataError, match="no price column"):
        load_catalog(no_price)
    js = tmp_path / "units.json"
    js.write_text(json.dumps({"machines": [{"name": "box", "vcpu": 4, "memory_gib": 8, "price_per_hour": 0.1}],
                              "unit_prices": [{"provider": "onprem", "vcpu_usd_per_hour": 0.02,
                                               "memory_gib_usd_per_hour": 0.001}]}))
    cat = load_catalog(js, provider="onprem")
    assert cat.find("box").vcpu == 4 and cat.unit_prices("onprem").vcpu_hour == 0.02
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(DataError, match="invalid JSON"):
        load_catalog(tmp_path / "broken.json")


PRICING = default_data_dir("pricing")


@pytest.mark.benchdata
def test_loads_the_shared_price_tables() -> None:
    if not PRICING.is_dir():
        pytest.skip(f"pricing tables not found at {PRICING} (../shared/benchmarks/pricing)")
    aws = load_catalog(PRICING / "aws_ec2_us-east-1_ondemand_karpenter.csv")
    assert aws.find("m5.large").price_per_hour == 0.096 and aws.find("t3.medium").price_per_hour == 0.0416
    assert aws.find("m5.large").allocatable_vcpu == pytest.approx(1.93)
    gce = load_catalog(PRICING / "gce_machine_prices_cluster_autoscaler.csv")
    n2 = gce.find("n2-standard-4")
    assert (n2.vcpu, n2.memory_gib, n2.price_per_hour, n2.spot_price_per_hour) == (4.0, 16.0, 0.1942, 0.047)
    fam = load_catalog(PRICING / "gce_family_unit_prices_cluster_autoscaler.csv")
    assert fam.unit_prices("gcp").vcpu_hour == pytest.approx(0.031611)
    east = load_catalog(PRICING / "azure_vm_ondemand_by_region_karpenter.csv.gz", region="eastus")
    west = load_catalog(PRICING / "azure_vm_ondemand_by_region_karpenter.csv.gz", region="westeurope")
    assert east.find("Standard_D4s_v5").price_per_hour == 0.192 and west.find("Standard_D4s_v5").price_per_hour == 0.23
    oc = load_catalog(PRICING / "default_unit_prices_opencost.json")
    assert oc.unit_prices().vcpu_hour == 0.031611 and oc.unit_prices().spot_gib_hour == 0.000892
    merged = builtin_catalog().merged(gce)
    assert merged.cheapest(1.0, 2 * GIB, provider="gcp") is not None


# ---- report rows, patches, CLI --------------------------------------------------------------------------------


def test_rows_price_the_change_and_explain_undefined() -> None:
    _, cpu = diurnal(3)
    web = usage(np.column_stack([cpu, cpu]), memory=np.full((cpu.size, 2), 400 * MIB),
                current=Resources(cpu_request=2.0, memory_request=1 * GIB, memory_limit=1 * GIB))
    idle = usage(np.zeros(3000))
    rows, recs = rightsize_rows([web, idle], build_recommender("opsmind"), PRICES, catalog=builtin_catalog(),
                                provider="aws", current_machine=builtin_catalog().find("m5.2xlarge"))
    r, u = rows
    assert r.replicas == 2 and r.defined and r.cpu_schedule is not None
    assert r.monthly_cost_current == pytest.approx((2.0 * 0.04 + 1 * 0.005) * 730 * 2)
    rec = defined(recs[0])
    assert rec.cpu_schedule is not None
    assert r.monthly_cost == pytest.approx((rec.cpu_schedule.mean * 0.04 + (rec.memory_request or 0) / GIB * 0.005)
                                           * 730 * 2)
    assert r.monthly_delta is not None and r.monthly_delta < 0
    assert r.machine is not None and r.machine.startswith("aws ") and r.machine_savings is not None
    assert r.spot.startswith("suitable")
    assert not u.defined and "zero in every sample" in u.reason
    d = r.to_dict()
    json.dumps(d)
    yaml.safe_dump(d)
    assert d["cpu_request_k8s"].endswith("m")


def test_patches_are_valid_partial_manifests() -> None:
    web = usage(np.full(3000, 0.3), memory=np.full(3000, 300 * MIB), namespace="shop", container="app",
                current=Resources(cpu_limit=0.2))
    web = WorkloadUsage(**{**web.__dict__, "workload": "web", "kind": "Deployment"})
    db = WorkloadUsage(**{**web.__dict__, "workload": "db_main", "kind": "StatefulSet", "container": "pg"})
    pod = WorkloadUsage(**{**web.__dict__, "workload": "debug", "kind": "Pod"})
    strat = build_recommender("krr-simple")
    items = [(w, defined(strat.recommend(w))) for w in (web, db, pod)]
    files = workload_patches(items)
    assert sorted(files) == ["shop.deployment.web.yaml", "shop.statefulset.db-main.yaml"]
    doc = yaml.safe_load(files["shop.deployment.web.yaml"])
    assert doc["apiVersion"] == "apps/v1" and doc["kind"] == "Deployment"
    assert doc["metadata"] == {"name": "web", "namespace": "shop"}
    (c,) = doc["spec"]["template"]["spec"]["containers"]
    res = c["resources"]
    rec = items[0][1]
    assert c["name"] == "app"
    assert parse_quantity(res["requests"]["cpu"]) == Decimal(str(rec.cpu_request))
    assert parse_quantity(res["requests"]["memory"]) >= Decimal(rec.memory_request or 0)
    assert parse_quantity(res["limits"]["cpu"]) == Decimal(str(rec.cpu_request))  # old 200m limit raised
    assert yaml.safe_load(files["shop.statefulset.db-main.yaml"])["metadata"]["name"] == "db-main"


def write_csv(path: Path, cpu: FloatArray, mem: FloatArray | None = None, step_s: float = 60.0) -> Path:
    ts = pd.to_datetime(T0 + step_s * np.arange(cpu.size), unit="s")
    df = pd.DataFrame({"timestamp": ts, "cpu_cores": cpu})
    if mem is not None:
        df["memory_bytes"] = mem
    df.to_csv(path, index=False)
    return path


def test_cli_files_formats_and_patches(tmp_path: Path) -> None:
    _, cpu = diurnal(3)
    web = write_csv(tmp_path / "web.csv", cpu, np.full(cpu.size, 400 * MIB))
    short = write_csv(tmp_path / "short.csv", cpu[:100])
    runner = CliRunner()
    res = runner.invoke(app, ["rightsize", str(web), str(short), "--format", "json", "--patch-dir",
                              str(tmp_path / "p")])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)
    assert [r["workload"] for r in rows] == ["web", "short"]
    assert rows[0]["defined"] and rows[0]["cpu_schedule"]["period"] == "day"
    assert not rows[1]["defined"] and "under the 1 d minimum" in rows[1]["reason"]
    assert (tmp_path / "p" / "deployment.web.yaml").is_file()
    table = runner.invoke(app, ["rightsize", str(web), str(short)])
    assert table.exit_code == 0 and "undefined, because" in table.stdout
    for fmt in ("csv", "yaml"):
        out = runner.invoke(app, ["rightsize", str(web), "-s", "vpa", "-f", fmt])
        assert out.exit_code == 0 and "vpa" in out.stdout
    bad = runner.invoke(app, ["rightsize", str(web), "--set", "risk_target=5"])
    assert bad.exit_code == 2 and "error: opsmind: risk_target" in bad.output
    missing = runner.invoke(app, ["rightsize", str(tmp_path / "nope.csv")])
    assert missing.exit_code == 2 and "no such file" in missing.output
    neither = runner.invoke(app, ["rightsize"])
    assert neither.exit_code == 2 and "error:" in neither.output
    gz = tmp_path / "web.csv.gz"
    gz.write_bytes(gzip.compress(web.read_bytes()))
    zipped = runner.invoke(app, ["rightsize", str(gz), "-f", "json"])
    assert zipped.exit_code == 0 and json.loads(zipped.stdout)[0]["memory_request"] > 400 * MIB


# ---- benchmark harness -------------------------------------------------------------------------------------------


def test_bench_rows_and_metric_keys(tmp_path: Path) -> None:
    _, cpu = diurnal(6)
    rng = np.random.default_rng(5)
    files = [write_csv(tmp_path / "day.csv", cpu),
             write_csv(tmp_path / "noise.csv", rng.gamma(3.0, 0.1, 6 * 288), step_s=300.0),
             write_csv(tmp_path / "idle.csv", np.zeros(6 * 288), step_s=300.0)]
    result = run_rightsize(files, data_label="generated")
    keys = {"slack_pct", "over_request_pct", "throttle_risk_min", "oom_risk", "monthly_cost"}
    assert [r.method for r in result.rows("all")] == list(METHODS)
    for name in ("day", "noise", "idle"):
        assert [r.method for r in result.rows(name)] == list(METHODS)
    assert all(set(r.metrics) == keys for r in result.results)
    assert all(math.isnan(r.metrics["slack_pct"]) for r in result.rows("idle"))
    assert any("idle: opsmind undefined, because CPU usage is zero" in n for n in result.notes)
    day = {r.method: r.metrics for r in result.rows("day")}
    assert day["opsmind"]["slack_pct"] < day["opsmind (static)"]["slack_pct"]  # the schedule follows the day
    everyone = {r.method: r.metrics for r in result.rows("all")}
    assert everyone["opsmind"]["slack_pct"] == pytest.approx(np.mean([
        {r.method: r.metrics for r in result.rows(n)}["opsmind"]["slack_pct"] for n in ("day", "noise")]))
    payload = json.dumps(result.to_json())
    assert '"dataset": "all"' in payload
    with pytest.raises(DataError, match=r"cannot read CSV|timestamp"):
        (tmp_path / "junk.csv").write_text("a\n1\n")
        load_trace(tmp_path / "junk.csv")


BENCH = default_data_dir("traces")


@pytest.mark.benchdata
def test_default_traces_are_found_and_load() -> None:
    nab = default_data_dir("nab")
    if not (BENCH / "crane_dsp_cpu").is_dir() or not (nab / "data").is_dir():
        pytest.skip(f"benchmark traces not found at {BENCH} / {nab} (../shared/benchmarks)")
    files = default_workloads(BENCH, nab)
    assert len([f for f in files if "input" in f.name]) == 16 and len(files) == 24
    data = load_trace(files[0])
    assert len(data.cpu) == 11520 and data.history_s() == pytest.approx(8 * 86400 - 60)
