"""``opsmind bench rightsize``: recommend from the first part of each CPU trace, evaluate on the rest.

Default traces: every ``crane_dsp_cpu/input*.csv[.gz]`` under ``--data`` (the traces folder; Tencent Crane's
production workload CPU) and NAB's ``data/realAWSCloudwatch/ec2_cpu_utilization_*.csv`` under ``--nab-data``
(AWS CloudWatch CPU of EC2 instances). ``--workload FILE`` (repeatable) replaces them: a CSV with a timestamp
column, a CPU column and optionally a memory column in bytes.

Every method sees the same split: the first ``train_fraction`` of each trace's time span (by time, 50 % by
default) is the history it recommends from; the rest is replayed against the recommendation
(:mod:`opsmind.rightsize.evaluate` defines the metrics). Methods, side by side in one run: ``opsmind`` (its
default strategy; a time-of-day CPU schedule where the trace has a daily pattern), ``opsmind (static)`` (the same
strategy's single static request), ``VPA-style`` (the VPA recommender's formulas) and ``KRR-simple``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from opsmind.bench.report import BenchResult, BenchRow
from opsmind.core import DataError, Frame
from opsmind.pricing import UnitPrices, builtin_catalog
from opsmind.rightsize import Recommendation, Undefined, WorkloadUsage, build_recommender
from opsmind.rightsize.evaluate import METRICS, evaluate

__all__ = ["METHODS", "UNITS", "WorkloadResult", "default_workloads", "load_trace", "run_rightsize"]

METHODS = ("opsmind", "opsmind (static)", "VPA-style", "KRR-simple")
_STRATEGY = {"opsmind": "opsmind", "opsmind (static)": "opsmind", "VPA-style": "vpa", "KRR-simple": "krr-simple"}
UNITS = {"peak": 1.0, "cores": 1.0, "millicores": 0.001, "percent": 0.01}
_TIME_NAMES = ("timestamp", "ts", "time", "date", "datetime")


@dataclass
class WorkloadResult:
    """Metrics per method for one trace (NaN where a method gave no recommendation), and why not."""

    name: str
    metrics: dict[str, dict[str, float]]
    undefined: dict[str, str]


def default_workloads(traces: Path, nab: Path) -> list[Path]:
    """The default traces: ``traces/crane_dsp_cpu/input*.csv[.gz]`` and NAB's EC2 CPU series under ``nab``."""
    crane = sorted((traces / "crane_dsp_cpu").glob("input*.csv*"),
                   key=lambda p: int("".join(c for c in p.name.split(".")[0] if c.isdigit()) or 0))
    ec2 = sorted((nab / "data" / "realAWSCloudwatch").glob("ec2_cpu_utilization_*.csv"))
    if not crane and not ec2:
        raise DataError("no crane_dsp_cpu/input*.csv[.gz] here and no data/realAWSCloudwatch/"
                        "ec2_cpu_utilization_*.csv under the NAB folder (pass --data, --nab-data or --workload FILE)",
                        where=f"{traces}, {nab}")
    return crane + ec2


def load_trace(path: Path, unit: str = "cores") -> WorkloadUsage:
    """A trace file as one workload: timestamp column, CPU column (converted from ``unit``), optional memory."""
    if unit not in UNITS:
        raise DataError(f"unknown unit {unit!r}; one of {', '.join(UNITS)}")
    name = path.name.split(".")[0]
    try:
        df = pd.read_csv(path)
    except (OSError, ValueError, pd.errors.ParserError, UnicodeDecodeError, EOFError) as exc:
        raise DataError(f"cannot read CSV: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}",
                        where=str(path)) from None
    if df.shape[1] < 2:
        raise DataError(f"need a timestamp and a CPU column, got {', '.join(map(str, df.columns))}", where=str(path))
    low = {str(c).lower(): str(c) for c in df.columns}
    ts_col = next((low[n] for n in _TIME_NAMES if n in low), str(df.columns[0]))
    frame = Frame.from_pandas(df, timestamp=ts_col, name=str(path), row_offset=2)
    return WorkloadUsage.from_frame(frame, name=name, cpu_scale=UNITS[unit])


def _scale_to_peak(data: WorkloadUsage, fraction: float) -> WorkloadUsage:
    """The trace scaled so that the peak of its history part is one core."""
    history, _ = _split(data, fraction)
    _, v = history.cpu_samples()
    peak = float(v.max()) if v.size else 0.0
    if not peak > 0:
        return data
    cpu = Frame(data.cpu.timestamps, data.cpu.values / peak, data.cpu.columns, data.cpu.name, data.cpu.notes)
    return replace(data, cpu=cpu)


def _split(data: WorkloadUsage, fraction: float) -> tuple[WorkloadUsage, WorkloadUsage]:
    t = data.cpu.seconds()
    cut = float(t[0] + fraction * (t[-1] - t[0]))
    return data.window(None, cut), data.window(cut, None)


def run_workload(data: WorkloadUsage, prices: UnitPrices, train_fraction: float) -> WorkloadResult:
    """Every method on one trace."""
    train, test = _split(data, train_fraction)
    recs: dict[str, Recommendation | Undefined] = {}
    for strategy in sorted(set(_STRATEGY.values())):
        recs[strategy] = build_recommender(strategy).recommend(train)
    metrics: dict[str, dict[str, float]] = {}
    undefined: dict[str, str] = {}
    for method in METHODS:
        rec = recs[_STRATEGY[method]]
        if isinstance(rec, Undefined) or len(test.cpu) == 0:
            metrics[method] = {k: math.nan for k in METRICS}
            undefined[method] = rec.reason if isinstance(rec, Undefined) else "no samples after the split"
            continue
        metrics[method] = evaluate(rec, test, prices, use_schedule=method != "opsmind (static)")
    return WorkloadResult(data.name, metrics, undefined)


def run_rightsize(
    files: Sequence[Path],
    *,
    data_label: str,
    train_fraction: float = 0.5,
    unit: str = "cores",
    provider: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> BenchResult:
    """Run every method on every trace and build the rows (``dataset="all"`` first, then one per trace)."""
    if not 0.0 < train_fraction < 1.0:
        raise DataError(f"train fraction must be between 0 and 1, got {train_fraction}")
    start = time.perf_counter()
    prices = builtin_catalog().unit_prices(provider)
    done = progress or (lambda _name: None)
    results: list[WorkloadResult] = []
    for path in files:
        data = load_trace(Path(path), unit)
        if unit == "peak":
            data = _scale_to_peak(data, train_fraction)
        results.append(run_workload(data, prices, train_fraction))
        done(Path(path).name)
    names = [r.name for r in results]
    if len(set(names)) != len(names):
        raise DataError("two traces have the same name: " + ", ".join(sorted({n for n in names if names.count(n) > 1})))
    common = [r for r in results if not r.undefined]
    rows: list[BenchRow] = []
    for method in METHODS:
        agg: dict[str, float] = {}
        for key in METRICS:
            vals = np.array([r.metrics[method][key] for r in common], dtype=np.float64)
            finite = vals[np.isfinite(vals)]
            if finite.size == 0:
                agg[key] = math.nan
            elif key in ("slack_pct", "over_request_pct"):
                agg[key] = float(finite.mean())
            else:
                agg[key] = float(finite.sum())
        rows.append(BenchRow(method, agg, "all"))
    for r in results:
        for method in METHODS:
            rows.append(BenchRow(method, dict(r.metrics[method]), r.name))
    result = BenchResult("rightsize", data_label, time.perf_counter() - start, rows)
    result.notes = _notes(results, common, train_fraction, unit, prices)
    return result


def _notes(results: list[WorkloadResult], common: list[WorkloadResult], fraction: float, unit: str,
           prices: UnitPrices) -> list[str]:
    by = {m: np.array([r.metrics[m]["slack_pct"] for r in common]) for m in METHODS}
    over = {m: np.array([r.metrics[m]["over_request_pct"] for r in common]) for m in METHODS}
    notes = [
        f"Split: each trace's first {fraction:.0%} of its time span is the history every method recommends from; "
        "the rest is replayed against the recommendation. Units: series values are read as CPU "
        + {"peak": "cores after scaling each trace so that the peak of its history part is one core (the traces "
                   "come in unknown or instance-relative units: NAB's are percent of an instance, Crane's are "
                   "undocumented; slack and over-request shares do not depend on the scale, only the methods' "
                   "minimum requests (VPA 25m, KRR 10m, opsmind 10m), VPA's 1000-core histogram ceiling and the "
                   "cost do)",
           "cores": "cores as they are (NAB's are percent of an instance, Crane's are undocumented; slack and "
                    "over-request shares do not depend on the unit, only the methods' minimum requests and the "
                    "cost do)",
           "millicores": "millicores (divided by 1000)", "percent": "percent of one core (divided by 100)"}[unit]
        + ".",
        "`slack_pct` = 100 * sum(max(request - usage, 0)) / sum(request) over the replayed samples; "
        "`over_request_pct` = share of samples with usage above the request; `throttle_risk_min` = minutes above "
        "the CPU limit, or the request when there is none (no method here sets a CPU limit); `oom_risk` = "
        "crossings of the memory limit (`-`: these traces have no memory); `monthly_cost` = time-mean request * "
        f"{prices.describe()} * 730 h.",
        f"`all` = the {len(common)} traces every method could size: mean of slack_pct and over_request_pct over "
        "traces (each trace counts once, whatever its size), sums of the other metrics.",
        "opsmind = strategy `opsmind` with its defaults: a time-of-day CPU schedule (one request per UTC hour) "
        "for traces with a daily pattern, applied in the replay as it would be with in-place pod resize "
        "(Kubernetes 1.33+); `opsmind (static)` = the same strategy's single request (P98 of the history). "
        "VPA-style = the VPA recommender's formulas (decaying histogram, P90 + 15 %, 25m minimum; live-recommender "
        "view: every sample, request weight 0.1); KRR-simple = KRR's simple strategy (P95, 10m minimum).",
    ]
    if common:
        ratio = float(by["opsmind"].mean() / by["VPA-style"].mean()) if by["VPA-style"].mean() > 0 else math.nan
        notes.append(
            f"opsmind / VPA-style slack = {ratio:.3f} (issue target <= 0.80); over-request opsmind "
            f"{over['opsmind'].mean():.2f} % vs VPA-style {over['VPA-style'].mean():.2f} %; opsmind (static) / "
            f"VPA-style slack = {by['opsmind (static)'].mean() / by['VPA-style'].mean():.3f}.")
    for r in results:
        for method, why in r.undefined.items():
            notes.append(f"{r.name}: {method} undefined, because {why}.")
    return notes
