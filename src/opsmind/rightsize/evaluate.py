"""Replaying a recommendation against usage it did not see: slack, risk and cost.

For a recommendation (static, or a CPU schedule) and a later stretch of usage (every pod's samples):

- ``slack_pct`` = 100 * sum over samples of ``max(request - usage, 0)`` / sum of ``request``: the share of the
  reserved CPU left unused (Autopilot's "slack", relative to the reservation);
- ``over_request_pct`` = 100 * share of samples with usage above the request;
- ``throttle_risk_min`` = minutes of samples above the CPU limit, or above the request when there is no limit
  (beyond its request a container runs on the node's spare CPU and is the first throttled under contention);
  each sample counts the median sample spacing;
- ``oom_risk`` = times the memory working set crosses above the memory limit (or request when there is no
  limit), per pod (NaN without memory samples or without a memory recommendation);
- ``monthly_cost`` = (time-mean CPU request * USD per vCPU-hour + memory request in GiB * USD per GiB-hour)
  * 730 h * mean replicas.
"""

from __future__ import annotations

import math

import numpy as np

from opsmind.pricing import HOURS_PER_MONTH, UnitPrices
from opsmind.rightsize.base import GIB, Recommendation, WorkloadUsage

__all__ = ["METRICS", "evaluate", "monthly_cost"]

METRICS = ("slack_pct", "over_request_pct", "throttle_risk_min", "oom_risk", "monthly_cost")


def monthly_cost(rec: Recommendation, prices: UnitPrices, replicas: float = 1.0, use_schedule: bool = True) -> float:
    """USD per month of the recommended requests (a schedule costs its time-mean)."""
    cpu = rec.cpu_schedule.mean if (use_schedule and rec.cpu_schedule is not None) else rec.cpu_request
    mem = rec.memory_request if rec.memory_request is not None else 0.0
    return (cpu * prices.vcpu_hour + mem / GIB * prices.gib_hour) * HOURS_PER_MONTH * replicas


def evaluate(
    rec: Recommendation, data: WorkloadUsage, prices: UnitPrices, *, use_schedule: bool = True
) -> dict[str, float]:
    """The metrics of the module docstring for ``rec`` replayed on ``data``."""
    t = data.cpu.seconds()
    u = data.cpu.values
    req = rec.cpu_request_at(t, use_schedule)[:, None] * np.ones((1, u.shape[1]))
    ok = np.isfinite(u)
    uu, rr = u[ok], req[ok]
    out: dict[str, float] = {k: math.nan for k in METRICS}
    if uu.size == 0:
        return out
    total = float(rr.sum())
    out["slack_pct"] = 100.0 * float(np.maximum(rr - uu, 0.0).sum()) / total if total > 0 else math.nan
    out["over_request_pct"] = 100.0 * float(np.mean(uu > rr))
    cap = np.full(rr.shape, rec.cpu_limit) if rec.cpu_limit is not None else rr
    out["throttle_risk_min"] = float(np.sum(uu > cap)) * data.step_s() / 60.0
    limit = rec.memory_limit if rec.memory_limit is not None else rec.memory_request
    if data.memory is not None and limit is not None and np.isfinite(data.memory.values).any():
        over = np.where(np.isfinite(data.memory.values), data.memory.values > limit, False)
        rises = over[0].sum() + np.sum(over[1:] & ~over[:-1])
        out["oom_risk"] = float(rises)
    replicas = data.mean_replicas()
    if use_schedule and rec.cpu_schedule is not None:
        cpu_mean = float(np.mean(rec.cpu_schedule.at(t)))
        mem = rec.memory_request or 0.0
        out["monthly_cost"] = (cpu_mean * prices.vcpu_hour + mem / GIB * prices.gib_hour) * HOURS_PER_MONTH * replicas
    else:
        out["monthly_cost"] = monthly_cost(rec, prices, replicas, use_schedule=False)
    return out
