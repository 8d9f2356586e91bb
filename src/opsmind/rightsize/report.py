"""One row per workload: current vs recommended, what it costs, the risk, and the cheapest machine.

:func:`rightsize_rows` runs a strategy over workloads and prices the answers; rows are plain data (for the
table, JSON, CSV and YAML). Costs are the requests times unit prices (per vCPU-hour and GiB-hour) times
730 hours times the mean number of replicas; a CPU schedule costs its time-mean. ``risk_over_request_pct`` is
the share of the *history's* samples above the recommended request (what the strategy accepted in-sample).

The machine is the cheapest type in the catalog whose usable vCPUs and memory cover the workload's P95 total
CPU (sum over its pods at each time) and P95 total memory plus ``machine_headroom`` (the VM view: what one
machine would need to run it); spot suitability comes from the workload class.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from opsmind.core import FloatArray
from opsmind.pricing import MachineType, PriceCatalog, UnitPrices
from opsmind.rightsize.base import (
    Recommendation,
    Recommender,
    Undefined,
    WorkloadUsage,
    check_usage,
    fmt_cpu,
    fmt_memory,
)
from opsmind.rightsize.classify import CLASS_DEFAULTS, profile
from opsmind.rightsize.evaluate import monthly_cost

__all__ = ["RightsizeRow", "rightsize_rows"]


@dataclass
class RightsizeRow:
    """Everything shown for one workload (CPU in cores, memory in bytes, money in USD per month)."""

    workload: str
    namespace: str
    kind: str
    container: str
    strategy: str
    defined: bool
    reason: str
    workload_class: str = ""
    pattern: str = ""
    cpu_request_current: float | None = None
    cpu_request: float | None = None
    cpu_limit_current: float | None = None
    cpu_limit: float | None = None
    memory_request_current: float | None = None
    memory_request: float | None = None
    memory_limit_current: float | None = None
    memory_limit: float | None = None
    cpu_schedule: dict[str, Any] | None = None
    replicas: float = 1.0
    monthly_cost_current: float | None = None
    monthly_cost: float | None = None
    monthly_delta: float | None = None
    risk_over_request_pct: float | None = None
    throttled_share: float | None = None
    oom_kills: int = 0
    restarts: float = 0.0
    confidence: float | None = None
    machine: str | None = None
    machine_monthly: float | None = None
    machine_spot_monthly: float | None = None
    machine_savings: float | None = None
    spot: str = ""
    evidence: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return "/".join(p for p in (self.namespace, self.workload, self.container) if p)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: plain Python numbers (rounded, NaN as None), Kubernetes quantities beside the raw values."""
        out: dict[str, Any] = _plain(asdict(self))
        for k in ("cpu_request_current", "cpu_request", "cpu_limit_current", "cpu_limit"):
            out[k + "_k8s"] = fmt_cpu(getattr(self, k)) if getattr(self, k) is not None else None
        for k in ("memory_request_current", "memory_request", "memory_limit_current", "memory_limit"):
            out[k + "_k8s"] = fmt_memory(getattr(self, k)) if getattr(self, k) is not None else None
        return out

    def flat(self) -> dict[str, Any]:
        """One level, for CSV (schedule as text, notes joined)."""
        d = self.to_dict()
        d.pop("evidence")
        sched = self.cpu_schedule
        d["cpu_schedule"] = ("; ".join(f"{s['start']}-{s['end']} {s['cpu']}" for s in sched["segments"])
                             if sched else "")
        d["notes"] = " | ".join(self.notes)
        return d


def _plain(value: Any) -> Any:
    """Numpy scalars to Python numbers, floats rounded to 6 places, NaN/inf to None, recursively."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.bool_ | bool):
        return bool(value)
    if isinstance(value, np.integer | int):
        return int(value)
    if isinstance(value, np.floating | float):
        f = float(value)
        return round(f, 6) if math.isfinite(f) else None
    return value


def _p95_total(frame_values: FloatArray) -> float:
    ok = np.isfinite(frame_values).any(axis=1)
    if not ok.any():
        return math.nan
    total = np.nansum(np.where(np.isfinite(frame_values), frame_values, 0.0), axis=1)[ok]
    return float(np.percentile(total, 95))


def _machine(catalog: PriceCatalog | None, data: WorkloadUsage, provider: str | None, region: str | None,
             headroom: float) -> MachineType | None:
    if catalog is None or len(catalog) == 0:
        return None
    cpu = _p95_total(data.cpu.values)
    mem = _p95_total(data.memory.values) if data.memory is not None else None
    if not math.isfinite(cpu):
        return None
    return catalog.cheapest(cpu, mem if mem is not None and math.isfinite(mem) else None,
                            provider=provider, region=region, headroom=headroom)


def rightsize_rows(
    usages: Sequence[WorkloadUsage],
    recommender: Recommender,
    prices: UnitPrices,
    *,
    catalog: PriceCatalog | None = None,
    provider: str | None = None,
    region: str | None = None,
    current_machine: MachineType | None = None,
    machine_headroom: float = 0.15,
) -> tuple[list[RightsizeRow], list[Recommendation | Undefined]]:
    """Recommend for every workload and build its row (undefined workloads get a row with the reason)."""
    rows: list[RightsizeRow] = []
    recs: list[Recommendation | Undefined] = []
    for data in usages:
        rec = recommender.recommend(data)
        recs.append(rec)
        cur = data.current
        replicas = data.mean_replicas()
        row = RightsizeRow(
            workload=data.workload or data.name, namespace=data.namespace, kind=data.kind, container=data.container,
            strategy=recommender.name, defined=rec.defined, reason=rec.reason, cpu_request_current=cur.cpu_request,
            cpu_limit_current=cur.cpu_limit,
            memory_request_current=cur.memory_request, memory_limit_current=cur.memory_limit, replicas=replicas,
            throttled_share=data.throttled_share, oom_kills=len(data.oom_kills), restarts=data.restarts,
            notes=list(data.notes),
        )
        if cur.cpu_request is not None:
            row.monthly_cost_current = prices.monthly(cur.cpu_request, cur.memory_request) * replicas
        needs_profile = isinstance(rec, Undefined) or not rec.workload_class
        prof = profile(data) if needs_profile and check_usage(data) is None else None
        if isinstance(rec, Recommendation):
            row.workload_class = rec.workload_class or (prof.workload_class if prof else "")
            row.pattern = rec.pattern or (prof.pattern if prof else "")
            row.cpu_request, row.cpu_limit = rec.cpu_request, rec.cpu_limit
            row.memory_request, row.memory_limit = rec.memory_request, rec.memory_limit
            row.cpu_schedule = rec.cpu_schedule.to_dict() if rec.cpu_schedule is not None else None
            row.monthly_cost = monthly_cost(rec, prices, replicas)
            if row.monthly_cost_current is not None:
                row.monthly_delta = row.monthly_cost - row.monthly_cost_current
            t = data.cpu.seconds()
            u = data.cpu.values
            r = rec.cpu_request_at(t)[:, None] * np.ones((1, u.shape[1]))
            ok = np.isfinite(u)
            row.risk_over_request_pct = 100.0 * float(np.mean(u[ok] > r[ok])) if ok.any() else None
            row.confidence = rec.confidence
            row.evidence = dict(rec.evidence)
            row.notes += list(rec.notes)
        elif prof is not None:
            row.workload_class, row.pattern = prof.workload_class, prof.pattern
        if row.workload_class:
            row.spot = CLASS_DEFAULTS[row.workload_class].spot
        if rec.defined:
            m = _machine(catalog, data, provider, region, machine_headroom)
            if m is not None:
                row.machine = f"{m.provider} {m.name}"
                row.machine_monthly = m.monthly()
                spot = m.monthly(spot=True)
                row.machine_spot_monthly = spot if math.isfinite(spot) else None
                if current_machine is not None:
                    row.machine_savings = current_machine.monthly() - m.monthly()
        rows.append(row)
    return rows, recs
