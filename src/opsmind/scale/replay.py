"""Replay a load trace against simulated replicas under a scaling policy, and score the result.

The simulation, one step of ``step_s`` seconds at a time (step ``k`` covers ``(t[k-1], t[k]]``):

1. ``ready`` replicas serve the step (those whose start-up delay ended by the start of the step). Each serves
   ``mu`` req/s with exponential service times: the service is M/M/c (:mod:`opsmind.capacity.queueing`).
2. Requests arrive at the trace's rate; requests that exceed the capacity wait in a backlog carried to the next
   step (:func:`carry_backlog`), and requests older than ``timeout_s`` are dropped.
3. The step **violates the SLO** when the rate offered to the replicas (arrivals plus the backlog) exceeds the
   largest rate at which ``ready`` replicas keep the latency quantile within the SLO (M/M/c), i.e. when the
   model's p95 (for a 0.95 SLO) exceeds the target; a saturated step always violates.
4. The policy observes the step (load, CPU utilisation of the ready replicas = served / (ready * mu), the load
   history) and sets the desired replica count. New replicas start now and serve after the start-up delay;
   removed replicas go at once, starting ones first (as a ReplicaSet removes not-ready pods first).

Scores over the scored steps (after the warm-up, where the load was observed): SLO-violation minutes,
replica-hours (every running replica, starting ones included), the number of scaling actions, and SPEC RG's
elasticity metrics (Herbst et al., "Ready for Rain? A View from SPEC Research on the Future of Cloud Metrics",
2016) with demand = the fewest replicas meeting the SLO at the step's load and supply = the ready replicas:
``theta_u`` / ``theta_o`` = mean of ``max(demand - supply, 0) / demand`` (resp. over-provisioning) in percent,
``tau_u`` / ``tau_o`` = percent of the time under- (resp. over-) provisioned.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from opsmind.capacity.queueing import carry_backlog
from opsmind.core import ConfigError, DataError, FloatArray
from opsmind.scale.base import CapacityTable, LoadHistory, Policy, ScalingDecision, ScalingState, ServiceModel

__all__ = ["ReplayResult", "carry_backlog", "replay", "score"]

IntArray = np.ndarray[Any, np.dtype[np.int64]]
METRICS = ("slo_violation_min", "replica_hours", "scaling_actions", "theta_u", "theta_o", "tau_u", "tau_o")


def _backlog_step(arrival: float, capacity: float, dt: float, timeout_s: float, b: float) -> tuple[float, float]:
    """One step of :func:`carry_backlog` on scalars: (offered rate, new backlog)."""
    offered = arrival + b / dt
    excess = max(offered - capacity, 0.0) * dt
    return offered, excess - max(excess - capacity * timeout_s, 0.0)


@dataclass
class ReplayResult:
    """Per-step series of a replay, the actions taken and the scores."""

    policy: str
    t: FloatArray
    load: FloatArray
    offered: FloatArray
    replicas: IntArray
    ready: IntArray
    demand: IntArray
    violation: np.ndarray[Any, np.dtype[np.bool_]]
    scored: np.ndarray[Any, np.dtype[np.bool_]]
    actions: list[ScalingDecision]
    metrics: dict[str, float]
    notes: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {"policy": self.policy, "metrics": self.metrics, "notes": self.notes,
                "steps": int(self.t.shape[0]), "scored_steps": int(self.scored.sum())}


def replay(
    t: npt.ArrayLike,
    load: npt.ArrayLike,
    policy: Policy,
    model: ServiceModel,
    *,
    step_s: float = 60.0,
    min_replicas: int = 1,
    max_replicas: int = 100,
    initial_replicas: int | None = None,
    warmup_steps: int = 0,
    timeout_s: float = 30.0,
    table: CapacityTable | None = None,
    keep_actions: bool = True,
    progress: Callable[[int], None] | None = None,
) -> ReplayResult:
    """Drive ``policy`` with the trace ``load`` (req/s per step; NaN = not observed) and score it (module doc)."""
    t = np.asarray(t, dtype=np.float64)
    load = np.asarray(load, dtype=np.float64)
    if t.ndim != 1:
        raise DataError(f"replay: need 1-D time and load arrays, got {t.shape}")
    n = t.shape[0]
    if n == 0 or load.shape != (n,):
        raise DataError(f"replay: need matching non-empty time and load arrays, got {t.shape} and {load.shape}")
    if not step_s > 0:
        raise ConfigError(f"replay: the step must be > 0 s, got {step_s}")
    if not 1 <= min_replicas <= max_replicas:
        raise ConfigError(f"replay: need 1 <= min_replicas <= max_replicas, got {min_replicas}/{max_replicas}")
    if np.any(load[np.isfinite(load)] < 0):
        raise DataError("replay: the load has negative values; clean the trace first (see load_trace)")
    table = table or CapacityTable(model, max(2 * max_replicas, 200))
    startup_steps = max(0, math.ceil(model.startup_s / step_s - 1e-9))
    finite = np.isfinite(load)
    first = load[finite][0] if finite.any() else 0.0
    c0 = initial_replicas if initial_replicas is not None else table.replicas(float(first))
    c0 = min(max(c0, min_replicas), max_replicas)

    policy.reset()
    n_ready = c0
    pending: deque[int] = deque()  # the step index from which each starting replica serves
    backlog = 0.0
    offered = np.zeros(n)
    replicas = np.zeros(n, dtype=np.int64)
    ready = np.zeros(n, dtype=np.int64)
    violation = np.zeros(n, dtype=bool)
    actions: list[ScalingDecision] = []
    n_actions = 0
    rate = table.rate
    mu = model.mu
    for k in range(n):
        while pending and pending[0] <= k:
            pending.popleft()
            n_ready += 1
        lam = float(load[k]) if finite[k] else 0.0
        cap = n_ready * mu
        off, backlog = _backlog_step(lam, cap, step_s, timeout_s, backlog)
        offered[k] = off
        ready[k] = n_ready
        replicas[k] = n_ready + len(pending)
        if n_ready == 0:
            violation[k] = off > 0
        else:
            limit = float(rate[n_ready - 1]) if n_ready <= table.c_max else table.max_rate(n_ready)
            violation[k] = off > limit
        util = min(off / cap, 1.0) if (cap > 0 and finite[k]) else math.nan
        state = ScalingState(float(t[k]), step_s, int(replicas[k]), n_ready, float(load[k]), util,
                             LoadHistory(t[: k + 1], load[: k + 1]), backlog)
        decision = policy.decide(state)
        desired = min(max(int(decision.desired), min_replicas), max_replicas)
        current = n_ready + len(pending)
        if desired != current:
            if k >= warmup_steps:
                n_actions += 1
            if keep_actions:
                actions.append(decision)
            if desired > current:
                pending.extend([k + 1 + startup_steps] * (desired - current))
            else:
                drop = current - desired
                while drop and pending:
                    pending.pop()
                    drop -= 1
                n_ready -= drop
        if progress is not None and (k + 1) % 1440 == 0:
            progress(1440)
    demand = table.replicas_many(load)
    scored = finite.copy()
    scored[:warmup_steps] = False
    metrics = score(replicas, ready, demand, violation, scored, step_s)
    metrics["scaling_actions"] = float(n_actions)
    notes = []
    if not scored.any():
        notes.append("no step was scored: the trace is shorter than the warm-up or has no observed load")
    return ReplayResult(policy.name, t, load, offered, replicas, ready, demand, violation, scored, actions, metrics,
                        notes)


def score(replicas: IntArray, ready: IntArray, demand: IntArray, violation: np.ndarray[Any, np.dtype[np.bool_]],
          scored: np.ndarray[Any, np.dtype[np.bool_]], step_s: float) -> dict[str, float]:
    """The replay's metrics over the ``scored`` steps (see the module doc); NaN when nothing is scored."""
    m = int(scored.sum())
    if m == 0:
        return {k: math.nan for k in METRICS}
    d = demand[scored].astype(np.float64)
    s = ready[scored].astype(np.float64)
    return {
        "slo_violation_min": float(violation[scored].sum() * step_s / 60.0),
        "replica_hours": float(replicas[scored].sum() * step_s / 3600.0),
        "scaling_actions": math.nan,
        "theta_u": float(np.mean(np.maximum(d - s, 0.0) / d) * 100.0),
        "theta_o": float(np.mean(np.maximum(s - d, 0.0) / d) * 100.0),
        "tau_u": float(np.mean(s < d) * 100.0),
        "tau_o": float(np.mean(s > d) * 100.0),
    }
