"""The HPA reference against the examples and rules of the Kubernetes documentation.

Source: kubernetes.io, "Horizontal Pod Autoscaling" (Algorithm details; Support for configurable scaling
behavior: scaling policies, stabilization window, default behavior, select policy, disabling scale down).
"""

from __future__ import annotations

import pytest

from opsmind.core import ConfigError
from opsmind.scale.hpa import (
    HorizontalPodAutoscaler,
    HPABehavior,
    HPAScalingPolicy,
    HPAScalingRules,
    PodSample,
    metric_replicas,
)


def pods(values: list[float | None], **kw: object) -> list[PodSample]:
    return [PodSample(f"p{i}", v, **kw) for i, v in enumerate(values)]  # type: ignore[arg-type]


# -- algorithm details -------------------------------------------------------------------------------------------


def test_double_when_current_is_twice_the_target() -> None:
    # "if the current metric value is 200m, and the desired value is 100m, the number of replicas will be doubled"
    p = metric_replicas(pods([0.2] * 3), 3, 0.1, kind="average_value", cpu=False)
    assert p.replicas == 6 and p.ratio == pytest.approx(2.0)


def test_halve_when_current_is_half_the_target() -> None:
    # "If the current value is instead 50m, you'll halve the number of replicas"
    assert metric_replicas(pods([0.05] * 4), 4, 0.1, kind="average_value", cpu=False).replicas == 2


def test_utilisation_formula_ceil() -> None:
    # desiredReplicas = ceil[currentReplicas * (currentMetricValue / desiredMetricValue)]; 50 x 90/75 = 60
    assert metric_replicas(pods([0.9] * 50), 50, 0.75).replicas == 60
    assert metric_replicas(pods([0.8] * 3), 3, 0.5).replicas == 5  # ceil(3 x 1.6) = ceil(4.8)


def test_tolerance_skips_small_changes() -> None:
    # "The control plane skips any scaling action if the ratio is sufficiently close to 1.0 (within ... 0.1)"
    assert metric_replicas(pods([0.105] * 10), 10, 0.1, kind="average_value", cpu=False).replicas == 10
    assert metric_replicas(pods([0.095] * 10), 10, 0.1, kind="average_value", cpu=False).replicas == 10
    assert metric_replicas(pods([0.111] * 10), 10, 0.1, kind="average_value", cpu=False).replicas == 12
    assert metric_replicas(pods([0.105] * 10), 10, 0.1, kind="average_value", cpu=False, tolerance=0.0).replicas == 11


def test_missing_metrics_on_scale_down_count_as_the_target() -> None:
    # Missing pods count as using 100 % of the desired value on a scale-down, which dampens it.
    plain = metric_replicas(pods([0.05] * 4), 6, 0.1, kind="average_value", cpu=False)
    with_missing = metric_replicas(pods([0.05] * 4 + [None] * 2), 6, 0.1, kind="average_value", cpu=False)
    assert plain.replicas == 2
    assert with_missing.replicas == 4  # ceil(6 x (0.2 + 0.2) / 6 / 0.1)


def test_missing_metrics_on_scale_up_count_as_zero() -> None:
    # ... and as 0 % on a scale-up: 2 pods at twice the target + 2 missing -> ratio 1.0 -> no change.
    p = metric_replicas(pods([0.2, 0.2, None, None]), 4, 0.1, kind="average_value", cpu=False)
    assert p.replicas == 4
    p = metric_replicas(pods([0.3, 0.3, None, None]), 4, 0.1, kind="average_value", cpu=False)
    assert p.replicas == 6  # ceil(4 x 0.15 / 0.1)


def test_not_ready_pods_count_as_zero_on_scale_up() -> None:
    # CPU: not-yet-ready pods are set aside; on a scale-up they count as 0 %, and a ratio back within tolerance
    # means no scaling action.
    ready = [PodSample(f"r{i}", 1.0) for i in range(2)]  # 100 % of the request, target 50 %: ratio 2
    starting = [PodSample(f"s{i}", 0.0, ready=False) for i in range(2)]
    assert metric_replicas(ready, 2, 0.5).replicas == 4
    assert metric_replicas(ready + starting, 4, 0.5).replicas == 4  # (2 x 1.0) / 4 / 0.5 = 1.0
    hot = [PodSample(f"r{i}", 1.5) for i in range(2)]  # ratio 3 -> with 2 unready at 0: 1.5 x 4 pods
    assert metric_replicas(hot + starting, 4, 0.5).replicas == 6
    pending = [PodSample("x", None, phase="Pending")]
    assert metric_replicas(hot + pending, 3, 0.5).replicas == 6  # ceil(3 pods x (3.0 / 3 / 0.5))
    assert metric_replicas([*pods([0.2, 0.2]), PodSample("d", 5.0, deleting=True)], 2, 0.5).replicas == 1


def test_not_ready_pods_are_ignored_on_scale_down() -> None:
    starting = [PodSample(f"s{i}", 0.0, ready=False) for i in range(2)]
    assert metric_replicas(pods([0.1, 0.1]) + starting, 4, 0.5).replicas == 1  # ceil(2 ready x 0.2)


def test_no_metrics_is_an_error() -> None:
    with pytest.raises(ConfigError, match="did not receive metrics"):
        metric_replicas(pods([None, None]), 2, 0.5)


# -- behaviour ---------------------------------------------------------------------------------------------------


def run(hpa: HorizontalPodAutoscaler, start: int, proposals: list[int], period: float) -> list[int]:
    out, cur = [], start
    for i, p in enumerate(proposals):
        cur = hpa.reconcile(i * period, cur, [p]).desired
        out.append(cur)
    return out


def test_default_scale_up_is_max_of_100_percent_and_4_pods_per_15s() -> None:
    hpa = HorizontalPodAutoscaler(1, 100)
    assert run(hpa, 1, [50, 50, 50, 50], 15.0) == [5, 10, 20, 40]


def test_scale_down_stabilisation_picks_the_highest_recommendation_of_the_window() -> None:
    # Default 300 s: proposals drop to 2 right after a recommendation of 10; the count stays 10 while the 10 is
    # in the window, then goes straight to the highest recommendation left (scale-down 100 % per 15 s).
    hpa = HorizontalPodAutoscaler(1, 100)
    seq = run(hpa, 10, [10] + [2] * 25, 15.0)
    assert seq[:20] == [10] * 20
    assert seq[20] == 2  # t = 300 s: the recommendation of t = 0 has left the window


def test_scaling_policies_max_example_from_the_docs() -> None:
    # "if there are 80 replicas and the target has to be scaled down to 10 replicas then during the first step 8
    # replicas will be reduced. In the next iteration when the number of replicas is 72, 10% of the pods is 7.2
    # but the number is rounded up to 8 ... When the number of replicas falls below 40 the first policy (Pods) is
    # applied and 4 replicas will be reduced at a time."
    down = HPAScalingRules(0, (HPAScalingPolicy("Pods", 4, 60), HPAScalingPolicy("Percent", 10, 60)))
    hpa = HorizontalPodAutoscaler(1, 100, HPABehavior(scale_down=down))
    seq = run(hpa, 80, [10] * 16, 60.0)
    # 10 % rounded up while above 40 replicas (8, 8, 7, 6, 6, 5), then 4 pods at a time, down to the target.
    assert seq == [72, 64, 57, 51, 45, 40, 36, 32, 28, 24, 20, 16, 12, 10, 10, 10]
    # Within one period only one step is allowed: syncs every 15 s do not go faster.
    hpa2 = HorizontalPodAutoscaler(1, 100, HPABehavior(scale_down=down))
    assert run(hpa2, 80, [10] * 5, 15.0) == [72, 72, 72, 72, 64]


def test_select_policy_min_and_disabled() -> None:
    # "To ensure that no more than 5 Pods are removed per minute, ... a second scale-down policy with a fixed size
    # of 5, and set selectPolicy to minimum."
    down = HPAScalingRules(0, (HPAScalingPolicy("Percent", 10, 60), HPAScalingPolicy("Pods", 5, 60)), "Min")
    hpa = HorizontalPodAutoscaler(1, 100, HPABehavior(scale_down=down))
    assert run(hpa, 80, [10, 10], 60.0) == [75, 70]
    off = HPAScalingRules(0, (HPAScalingPolicy("Percent", 100, 15),), "Disabled")
    hpa = HorizontalPodAutoscaler(1, 100, HPABehavior(scale_down=off))
    assert run(hpa, 10, [2] * 30, 15.0) == [10] * 30
    hpa = HorizontalPodAutoscaler(1, 100, HPABehavior(scale_down=off))
    assert run(hpa, 10, [20], 15.0) == [20]  # scale-up still works


def test_scale_up_stabilisation_takes_the_lowest_recommendation() -> None:
    up = HPAScalingRules(60, (HPAScalingPolicy("Percent", 100, 15),))
    hpa = HorizontalPodAutoscaler(1, 100, HPABehavior(scale_up=up))
    # At t = 60 s the recommendation of t = 0 (4) is no longer inside the 60 s window.
    assert run(hpa, 4, [4, 8, 8, 8, 8, 8], 15.0) == [4, 4, 4, 4, 8, 8]
    hpa = HorizontalPodAutoscaler(1, 100, HPABehavior(scale_up=up))
    # A lower recommendation inside the scale-up window never scales down (the scale-down window keeps 8).
    assert run(hpa, 4, [8, 5, 8, 8], 15.0) == [8, 8, 8, 8]


def test_min_max_and_scale_events_per_period() -> None:
    hpa = HorizontalPodAutoscaler(2, 10)
    assert hpa.reconcile(0.0, 1, [1]).desired == 2  # below minReplicas
    assert hpa.reconcile(15.0, 12, [12]).desired == 10  # above maxReplicas
    res = hpa.reconcile(30.0, 10, [50])
    assert res.desired == 10 and res.reason == "TooManyReplicas"
    up = HPAScalingRules(0, (HPAScalingPolicy("Pods", 4, 60),))
    hpa = HorizontalPodAutoscaler(1, 100, HPABehavior(scale_up=up))
    assert run(hpa, 2, [20] * 6, 15.0) == [6, 6, 6, 6, 10, 10]  # the period starts at 2 until t = 60 s


def test_invalid_metric_blocks_scale_down_only() -> None:
    hpa = HorizontalPodAutoscaler(1, 100, HPABehavior(scale_down=HPAScalingRules(0, (HPAScalingPolicy(
        "Percent", 100, 15),))))
    assert hpa.reconcile(0.0, 10, [3, None]).desired == 10
    assert hpa.reconcile(15.0, 10, [14, None]).desired == 14
    assert hpa.reconcile(30.0, 14, [None]).reason == "FailedGetMetrics"
