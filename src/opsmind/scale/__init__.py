"""Autoscaling: the Kubernetes HPA reference, opsmind's predictive policy, peers, a replay simulator and actuation.

Importing this package registers every policy in :data:`POLICIES` (``hpa``, ``opsmind``, ``holt-winters``,
``effective``). :func:`make_policy` builds one with a service model and replica limits; :func:`simulate` replays a
trace under it (what ``opsmind scale simulate`` runs).
"""

from __future__ import annotations

from collections.abc import Callable

from opsmind.core import Frame
from opsmind.scale.base import POLICIES, CapacityTable, Policy, ScalingDecision, ScalingState, ServiceModel
from opsmind.scale.effective import EffectiveHPAPolicy
from opsmind.scale.feed import RollingForecast, ShortForecast
from opsmind.scale.holt_winters import HoltWintersPolicy
from opsmind.scale.hpa import HorizontalPodAutoscaler, HPAPolicy, metric_replicas
from opsmind.scale.kube import KubernetesScaler, recommendations
from opsmind.scale.predictive import PredictivePolicy
from opsmind.scale.replay import ReplayResult, carry_backlog, replay
from opsmind.scale.trace import PreparedTrace, prepare_trace

__all__ = [
    "POLICIES",
    "CapacityTable",
    "EffectiveHPAPolicy",
    "HPAPolicy",
    "HoltWintersPolicy",
    "HorizontalPodAutoscaler",
    "KubernetesScaler",
    "Policy",
    "PredictivePolicy",
    "PreparedTrace",
    "ReplayResult",
    "RollingForecast",
    "ScalingDecision",
    "ScalingState",
    "ServiceModel",
    "ShortForecast",
    "carry_backlog",
    "make_policy",
    "metric_replicas",
    "prepare_trace",
    "recommendations",
    "replay",
    "simulate",
]


def make_policy(name: str, model: ServiceModel, *, min_replicas: int = 1, max_replicas: int = 100,
                target_utilization: float = 0.7) -> Policy:
    """A registered policy by name, configured with the service model and the replica limits."""
    cls = POLICIES.get(name)
    lo, hi = min_replicas, max_replicas
    if cls is PredictivePolicy:
        return PredictivePolicy(mu=model.mu, slo_latency_s=model.slo_latency_s, slo_quantile=model.slo_quantile,
                                startup_s=model.startup_s, min_replicas=lo, max_replicas=hi)
    if cls is EffectiveHPAPolicy:
        return EffectiveHPAPolicy(mu=model.mu, target_utilization=target_utilization, min_replicas=lo, max_replicas=hi)
    if cls is HPAPolicy:
        return HPAPolicy(target_utilization=target_utilization, min_replicas=lo, max_replicas=hi)
    if cls is HoltWintersPolicy:
        return HoltWintersPolicy(target_utilization=target_utilization, min_replicas=lo, max_replicas=hi)
    return POLICIES.build({"type": name, "params": {"min_replicas": lo, "max_replicas": hi}})


def simulate(frame: Frame, policy: str, model: ServiceModel, *, step_s: float = 60.0, column: str | None = None,
             size_replicas: int | None = 25, warmup_s: float = 2 * 86400.0, min_replicas: int = 1,
             max_replicas: int = 100, target_utilization: float = 0.7,
             progress: Callable[[int], None] | None = None) -> tuple[PreparedTrace, ReplayResult | None]:
    """Prepare ``frame`` as a load trace and replay it under ``policy``; ``None`` when the trace is not usable
    (the prepared trace's notes say why). ``progress`` is called with the number of steps done, now and then."""
    trace = prepare_trace(frame, model, step_s=step_s, column=column, size_replicas=size_replicas)
    if not trace.usable:
        return trace, None
    pol = make_policy(policy, model, min_replicas=min_replicas, max_replicas=max_replicas,
                      target_utilization=target_utilization)
    warmup = round(warmup_s / step_s)
    if warmup >= trace.t.shape[0]:
        trace.notes.append(f"the trace ({trace.days:.2f} days) is not longer than the warm-up "
                           f"({warmup_s / 86400:g} days): nothing would be scored; scoring every step instead")
        warmup = 0
    return trace, replay(trace.t, trace.load, pol, model, step_s=step_s, min_replicas=min_replicas,
                         max_replicas=max_replicas, warmup_steps=warmup, progress=progress)
