"""A reference implementation of the Kubernetes Horizontal Pod Autoscaler (autoscaling/v2) algorithm.

Written from the Kubernetes documentation ("Horizontal Pod Autoscaling", *Algorithm details*, *Support for
configurable scaling behavior*) and the controller's documented behaviour:

* **Replica calculation** per metric: ``desired = ceil(ready_pods * current / target)``, no change when the
  ratio ``current / target`` is within the tolerance (0.1) of 1. Pods being deleted and failed pods are ignored;
  pods that are not ready yet (for CPU: not ready, or within the initialisation period) and pods without a metric
  are set aside. If pods were set aside, the ratio is recomputed conservatively: pods with missing metrics count
  as using 100 % of the target on a scale-down and 0 % on a scale-up, not-yet-ready pods as 0 % on a scale-up;
  if the new ratio is within tolerance or reverses the direction, the replica count does not change.
* **Several metrics**: the largest proposal wins; if any metric could not be computed, a scale-down is skipped.
* **Behaviour**: the recommendation is stabilised (scale-up: the lowest recommendation of the scale-up window,
  default 0 s; scale-down: the highest of the scale-down window, default 300 s; the result stays between the
  two, starting from the current count, so stabilising never moves the other way), then rate-limited by the scaling
  policies (``Pods``/``Percent`` per ``periodSeconds``, counted from the replica count at the start of the period;
  ``selectPolicy`` ``Max`` = the policy allowing the biggest change, ``Min`` = the smallest, ``Disabled``), then
  clamped to ``minReplicas``/``maxReplicas``.

Defaults are the documented ones: scale-up ``max(100 %, 4 pods) per 15 s`` with no stabilisation, scale-down
``100 % per 15 s`` after a 300 s stabilisation window, tolerance 0.1. Time comes in with each call (seconds).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from opsmind.core import ConfigError
from opsmind.scale.base import POLICIES, Policy, ScalingDecision, ScalingState

__all__ = [
    "HPABehavior",
    "HPAPolicy",
    "HPAResult",
    "HPAScalingPolicy",
    "HPAScalingRules",
    "HorizontalPodAutoscaler",
    "MetricProposal",
    "PodSample",
    "metric_replicas",
    "replay_pods",
    "replicas_from_counts",
]

PodPhase = Literal["Running", "Pending", "Failed"]


@dataclass(frozen=True)
class PodSample:
    """One pod as the HPA sees it: its metric (``None`` = missing), its request, and its readiness.

    ``ready=False`` on a running pod means "not yet ready" in the sense of the documentation (unready, or its CPU
    sample predates readiness within the initialisation period): set aside for CPU metrics. ``Pending`` pods are
    set aside for every metric; ``deleting`` and ``Failed`` pods are ignored.
    """

    name: str
    value: float | None
    request: float = 1.0
    ready: bool = True
    phase: PodPhase = "Running"
    deleting: bool = False


@dataclass(frozen=True)
class MetricProposal:
    """The replica count one metric proposes, the raw ratio to its target and how it was reached."""

    replicas: int
    ratio: float
    note: str


def metric_replicas(
    pods: Sequence[PodSample],
    current_replicas: int,
    target: float,
    *,
    kind: Literal["utilization", "average_value"] = "utilization",
    cpu: bool = True,
    tolerance: float = 0.1,
) -> MetricProposal:
    """The replica count proposed by one metric (the controller's ``GetResourceReplicas`` / ``GetMetricReplicas``).

    ``kind="utilization"``: ``value`` is usage in the unit of ``request`` and ``target`` a fraction of the
    request (0.7 = 70 %); the ratio is ``sum(usage) / sum(request) / target``. ``kind="average_value"``: the
    ratio is ``mean(value) / target``. ``cpu`` selects the CPU rule for not-yet-ready running pods.
    On a scale-down, pods with missing metrics count as using ``max(100 %, target)`` of their request
    (utilisation) or exactly the target (average value), as the controller does.
    Raises :class:`ConfigError` when no pod has a usable metric (the HPA then cannot compute this metric).
    """
    ready: list[PodSample] = []
    unready: list[PodSample] = []
    missing: list[PodSample] = []
    for p in pods:
        if p.deleting or p.phase == "Failed":
            continue
        if p.phase == "Pending":
            unready.append(p)
        elif p.value is None or not math.isfinite(p.value):
            missing.append(p)
        elif cpu and not p.ready:
            unready.append(p)
        else:
            ready.append(p)
    return replicas_from_counts(
        current_replicas, target,
        n_ready=len(ready), usage_sum=sum(p.value or 0.0 for p in ready),
        request_sum=sum(p.request for p in ready),
        n_unready=len(unready), unready_request=sum(p.request for p in unready),
        n_missing=len(missing), missing_request=sum(p.request for p in missing),
        kind=kind, tolerance=tolerance)


def replicas_from_counts(
    current_replicas: int,
    target: float,
    *,
    n_ready: int,
    usage_sum: float,
    request_sum: float,
    n_unready: int = 0,
    unready_request: float = 0.0,
    n_missing: int = 0,
    missing_request: float = 0.0,
    kind: Literal["utilization", "average_value"] = "utilization",
    tolerance: float = 0.1,
) -> MetricProposal:
    """:func:`metric_replicas` on pods already grouped: ``n_ready`` pods with a metric (total ``usage_sum``,
    total request ``request_sum``), ``n_unready`` set aside as not ready, ``n_missing`` without a metric.

    Arithmetic as in the controller: quantities in milli-units (integers), utilisation as a whole percentage
    (truncated), ``ratio = utilisation / target`` and ``ceil(ratio * pods)`` in float64.
    """
    if not target > 0:
        raise ConfigError(f"HPA: the metric target must be > 0, got {target}")
    if n_ready < 1:
        raise ConfigError("HPA: did not receive metrics for any ready pod (pods might be unready)")
    util = kind == "utilization"
    usage_m, request_m = _milli(usage_sum), _milli(request_sum)
    if util and request_m <= 0:
        raise ConfigError("HPA: pods have no resource request; utilisation is undefined")
    target_i = round(target * 100) if util else _milli(target)
    if target_i <= 0:
        raise ConfigError(f"HPA: the metric target {target} rounds to zero")

    def ratio_of(usage: int, request: int, n: int) -> float:
        current = (usage * 100) // request if util else usage // n
        return float(current) / float(target_i)

    ratio = ratio_of(usage_m, request_m, n_ready)
    up_unready = n_unready > 0 and ratio > 1.0
    if not up_unready and n_missing == 0:
        if abs(1.0 - ratio) <= tolerance:
            return MetricProposal(current_replicas, ratio, f"ratio {ratio:.3f} within tolerance {tolerance:g}")
        return MetricProposal(math.ceil(ratio * float(n_ready)), ratio, f"ceil({n_ready} ready x ratio {ratio:.3f})")
    usage, request, n = usage_m, request_m, n_ready
    if n_missing and ratio != 1.0:
        n += n_missing
        miss_m = _milli(missing_request)
        request += miss_m
        if ratio < 1.0:
            usage += miss_m * max(100, target_i) // 100 if util else n_missing * target_i
    if up_unready:
        n += n_unready
        request += _milli(unready_request)
    new_ratio = ratio_of(usage, request, n)
    if abs(1.0 - new_ratio) <= tolerance or (ratio < 1.0 < new_ratio) or (ratio > 1.0 > new_ratio):
        return MetricProposal(current_replicas, ratio,
                              f"ratio {ratio:.3f} -> {new_ratio:.3f} counting {n_missing} pod(s) without metrics "
                              f"and {n_unready if up_unready else 0} not-ready pod(s): no change")
    new = math.ceil(new_ratio * float(n))
    if (new_ratio < 1.0 and new > current_replicas) or (new_ratio > 1.0 and new < current_replicas):
        return MetricProposal(current_replicas, ratio, "the pod count would reverse the direction: no change")
    return MetricProposal(new, ratio, f"ceil({n} pods x conservative ratio {new_ratio:.3f})")


def _milli(x: float) -> int:
    return round(x * 1000.0)


@dataclass(frozen=True)
class HPAScalingPolicy:
    """``type`` Pods or Percent, ``value``, ``period_s`` (periodSeconds)."""

    type: Literal["Pods", "Percent"]
    value: int
    period_s: int

    def __post_init__(self) -> None:
        if self.type not in ("Pods", "Percent"):
            raise ConfigError(f"HPA scaling policy type must be Pods or Percent, got {self.type!r}")
        if self.value <= 0 or not 0 < self.period_s <= 1800:
            raise ConfigError("HPA scaling policy: value must be > 0 and periodSeconds in (0, 1800]")


@dataclass(frozen=True)
class HPAScalingRules:
    """One direction of ``behavior``: stabilisation window, policies and ``selectPolicy`` (Max, Min, Disabled)."""

    stabilization_window_s: int
    policies: tuple[HPAScalingPolicy, ...]
    select_policy: Literal["Max", "Min", "Disabled"] = "Max"

    def __post_init__(self) -> None:
        if not 0 <= self.stabilization_window_s <= 3600:
            raise ConfigError("HPA: stabilizationWindowSeconds must be in [0, 3600]")
        if self.select_policy not in ("Max", "Min", "Disabled"):
            raise ConfigError(f"HPA: selectPolicy must be Max, Min or Disabled, got {self.select_policy!r}")

    @property
    def longest_period_s(self) -> int:
        return max((p.period_s for p in self.policies), default=0)


@dataclass(frozen=True)
class HPABehavior:
    """``spec.behavior``; the defaults are Kubernetes' defaults."""

    scale_up: HPAScalingRules = field(default_factory=lambda: HPAScalingRules(
        0, (HPAScalingPolicy("Percent", 100, 15), HPAScalingPolicy("Pods", 4, 15)), "Max"))
    scale_down: HPAScalingRules = field(default_factory=lambda: HPAScalingRules(
        300, (HPAScalingPolicy("Percent", 100, 15),), "Max"))


@dataclass(frozen=True)
class HPAResult:
    """One reconciliation: the replica count to set and why (``reason`` as the HPA conditions name it)."""

    current: int
    desired: int
    proposed: int | None
    stabilised: int | None
    reason: str
    message: str


class HorizontalPodAutoscaler:
    """The HPA controller's state for one target: recommendation history and scale events.

    Call :meth:`reconcile` once per sync period with the time, the current replica count and the replica counts
    proposed by each metric (``None`` for a metric that could not be computed); see :func:`metric_replicas`.
    """

    def __init__(self, min_replicas: int = 1, max_replicas: int = 10, behavior: HPABehavior | None = None) -> None:
        if min_replicas < 0 or max_replicas < max(min_replicas, 1):
            raise ConfigError(f"HPA: need 0 <= minReplicas <= maxReplicas and maxReplicas >= 1, "
                              f"got {min_replicas}/{max_replicas}")
        self.min_replicas = min_replicas
        self.max_replicas = max_replicas
        self.behavior = behavior or HPABehavior()
        self.recommendations: list[tuple[float, int]] = []
        self.scale_up_events: list[tuple[float, int]] = []
        self.scale_down_events: list[tuple[float, int]] = []

    def reset(self) -> None:
        self.recommendations.clear()
        self.scale_up_events.clear()
        self.scale_down_events.clear()

    def reconcile(self, now_s: float, current: int, proposals: Sequence[int | None]) -> HPAResult:
        """The replica count after one sync at ``now_s`` (records the recommendation and any scale event)."""
        if current == 0 and self.min_replicas != 0:
            return HPAResult(current, 0, None, None, "ScalingDisabled", "scaling is disabled since the replica count "
                             "of the target is zero")
        if current > self.max_replicas:
            desired, reason, msg = self.max_replicas, "TooManyReplicas", "current replicas above maxReplicas"
            proposed = stabilised = None
        elif current < self.min_replicas:
            desired, reason, msg = self.min_replicas, "TooFewReplicas", "current replicas below minReplicas"
            proposed = stabilised = None
        else:
            valid = [p for p in proposals if p is not None]
            if not valid:
                return HPAResult(current, current, None, None, "FailedGetMetrics",
                                 "no metric could be computed: the replica count is kept")
            proposed = max(valid)
            if len(valid) < len(proposals) and proposed < current:
                return HPAResult(current, current, proposed, None, "InvalidMetricsNoScaleDown",
                                 "a metric could not be computed: scale-down is skipped")
            stabilised, reason, msg = self._stabilise(now_s, current, proposed)
            desired, reason2, msg2 = self._rate_limit(now_s, current, stabilised)
            if desired != stabilised:
                reason, msg = reason2, msg2
        if desired != current:
            self._store_event(now_s, current, desired)
        return HPAResult(current, desired, proposed, stabilised, reason, msg)

    # -- behaviour ------------------------------------------------------------------------------------------

    def _stabilise(self, now: float, current: int, desired: int) -> tuple[int, str, str]:
        """The recommendation kept between the lowest of the scale-up window and the highest of the scale-down
        window (each including this one), starting from the current count: it never moves the other way."""
        up_w = self.behavior.scale_up.stabilization_window_s
        down_w = self.behavior.scale_down.stabilization_window_s
        self.recommendations = [(t, r) for t, r in self.recommendations if t > now - max(up_w, down_w)]
        up_rec = down_rec = desired
        for t, r in self.recommendations:
            if t > now - up_w:
                up_rec = min(up_rec, r)
            if t > now - down_w:
                down_rec = max(down_rec, r)
        self.recommendations.append((now, desired))
        rec = min(max(current, up_rec), down_rec)
        if rec == desired:
            return rec, "ReadyForNewScale", "recommended size matches the proposal"
        if desired > current:
            return rec, "ScaleUpStabilized", ("recent recommendations were lower than current one, applying the "
                                              "lowest recent recommendation")
        return rec, "ScaleDownStabilized", ("recent recommendations were higher than current one, applying the "
                                            "highest recent recommendation")

    @staticmethod
    def _changes(events: list[tuple[float, int]], now: float, period: int) -> int:
        return sum(n for t, n in events if t > now - period)

    def _rate_limit(self, now: float, current: int, desired: int) -> tuple[int, str, str]:
        if desired > current:
            rules = self.behavior.scale_up
            limit = current
            if rules.select_policy != "Disabled" and rules.policies:
                proposals = []
                for p in rules.policies:
                    start = (current - self._changes(self.scale_up_events, now, p.period_s)
                             + self._changes(self.scale_down_events, now, p.period_s))
                    proposals.append(start + p.value if p.type == "Pods"
                                     else math.ceil(start * (1.0 + p.value / 100.0)))
                limit = max(proposals) if rules.select_policy == "Max" else min(proposals)
            limit = max(limit, current)
            if self.max_replicas > limit:
                allowed, reason = limit, "ScaleUpLimit"
                msg = "the desired replica count is increasing faster than the maximum scale rate"
            else:
                allowed, reason = self.max_replicas, "TooManyReplicas"
                msg = "the desired replica count is more than the maximum replica count"
            if desired > allowed:
                return allowed, reason, msg
        elif desired < current:
            rules = self.behavior.scale_down
            limit = current
            if rules.select_policy != "Disabled" and rules.policies:
                proposals = []
                for p in rules.policies:
                    start = (current + self._changes(self.scale_down_events, now, p.period_s)
                             - self._changes(self.scale_up_events, now, p.period_s))
                    proposals.append(start - p.value if p.type == "Pods"
                                     else int(start * (1.0 - p.value / 100.0)))
                limit = min(proposals) if rules.select_policy == "Max" else max(proposals)
            limit = min(limit, current)
            if self.min_replicas < limit:
                allowed, reason = limit, "ScaleDownLimit"
                msg = "the desired replica count is decreasing faster than the maximum scale rate"
            else:
                allowed, reason = self.min_replicas, "TooFewReplicas"
                msg = "the desired replica count is less than the minimum replica count"
            if desired < allowed:
                return allowed, reason, msg
        return desired, "DesiredWithinRange", "the desired count is within the acceptable range"

    def _store_event(self, now: float, before: int, after: int) -> None:
        if after > before:
            keep = self.behavior.scale_up.longest_period_s
            self.scale_up_events = [(t, n) for t, n in self.scale_up_events if t > now - keep]
            self.scale_up_events.append((now, after - before))
        else:
            keep = self.behavior.scale_down.longest_period_s
            self.scale_down_events = [(t, n) for t, n in self.scale_down_events if t > now - keep]
            self.scale_down_events.append((now, before - after))


def replay_pods(state: ScalingState, metric: float) -> list[PodSample]:
    """The pods of a replayed workload: ``ready`` running pods reporting ``metric`` each (``None`` if NaN) and
    ``replicas - ready`` pods still starting (Pending)."""
    value = metric if math.isfinite(metric) else None
    pods = [PodSample(f"p{i}", value) for i in range(state.ready)]
    pods += [PodSample(f"s{i}", None, phase="Pending") for i in range(state.replicas - state.ready)]
    return pods


@POLICIES.register("hpa")
class HPAPolicy(Policy):
    """The Kubernetes HPA on CPU utilisation (default target 70 %), default behaviour, one sync per step.

    In a replay each ready replica reports ``state.utilisation`` (its CPU as a fraction of its request) and the
    replicas still starting are Pending (set aside, counted as 0 % on a scale-up), as the documentation says.
    """

    name = "hpa"

    def __init__(self, target_utilization: float = 0.7, min_replicas: int = 1, max_replicas: int = 100,
                 tolerance: float = 0.1) -> None:
        if not 0 < target_utilization <= 1.5:
            raise ConfigError(f"hpa: target utilisation is a fraction of the request (0.7 = 70 %), "
                              f"got {target_utilization}")
        self.target_utilization = target_utilization
        self.min_replicas = min_replicas
        self.max_replicas = max_replicas
        self.tolerance = tolerance
        self.hpa_ = HorizontalPodAutoscaler(min_replicas, max_replicas)

    def reset(self) -> None:
        self.hpa_ = HorizontalPodAutoscaler(self.min_replicas, self.max_replicas)

    def proposal(self, state: ScalingState) -> tuple[int | None, str]:
        """The CPU metric's proposal (``None`` when it cannot be computed) and how it was reached."""
        if state.ready < 1 or not math.isfinite(state.utilisation):
            return None, "no CPU metric from any ready pod"
        try:
            p = replicas_from_counts(state.replicas, self.target_utilization, n_ready=state.ready,
                                     usage_sum=state.utilisation * state.ready, request_sum=float(state.ready),
                                     n_unready=state.replicas - state.ready,
                                     unready_request=float(state.replicas - state.ready), tolerance=self.tolerance)
        except ConfigError as exc:
            return None, str(exc)
        return p.replicas, p.note

    def decide(self, state: ScalingState) -> ScalingDecision:
        proposed, note = self.proposal(state)
        res = self.hpa_.reconcile(state.time_s, state.replicas, [proposed])
        return self._decision(state, res.desired, f"{res.reason}: CPU {state.utilisation * 100:.0f} % vs target "
                              f"{self.target_utilization * 100:.0f} %; {note}", {
                                  "cpu_utilisation": state.utilisation, "target_utilisation": self.target_utilization,
                                  "proposed": proposed, "stabilised": res.stabilised, "condition": res.reason})
