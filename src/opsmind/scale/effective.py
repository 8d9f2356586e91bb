"""A peer: "max(HPA, forecast)" in the style of Crane's EffectiveHorizontalPodAutoscaler (EHPA).

As Crane documents it (gocrane/crane, *Effective HorizontalPodAutoscaler*), prediction-driven EHPA runs a normal
HPA with two metrics: the user's CPU utilisation target and a *prediction metric*, the largest predicted CPU usage
of the workload within ``predictionWindowSeconds`` (3600 in the documented example) spread over the available pods
and compared with the same target as an average value. The HPA takes the larger proposal, so the workload scales
up before a predicted peak and scales down only when neither the present nor the next hour needs the replicas;
the HPA's own behaviour (stabilisation, rate limits) applies to the result.

Here the HPA is :mod:`opsmind.scale.hpa`; CPU is measured in replicas' requests (one replica at full load = 1),
so predicted usage = predicted load / mu. The predictor is the rolling forecast of :mod:`opsmind.scale.feed`
(the same forecast opsmind's policy uses; Crane's DSP predictor itself is not reimplemented). Until the forecast
exists the prediction metric is unavailable, and the HPA then skips scale-downs, as Kubernetes does when a metric
is invalid.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from opsmind.core import ConfigError
from opsmind.scale.base import POLICIES, Policy, ScalingDecision, ScalingState
from opsmind.scale.feed import RollingForecast
from opsmind.scale.hpa import HorizontalPodAutoscaler, replicas_from_counts

__all__ = ["EffectiveHPAPolicy"]


@POLICIES.register("effective")
class EffectiveHPAPolicy(Policy):
    """Crane EHPA style: HPA on max(CPU utilisation, predicted peak CPU over the prediction window)."""

    name = "effective"

    def __init__(self, mu: float = 10.0, target_utilization: float = 0.7, prediction_window_s: float = 3600.0,
                 min_replicas: int = 1, max_replicas: int = 100, tolerance: float = 0.1,
                 forecaster: str | Mapping[str, Any] = "opsmind", refit_every_s: float = 86400.0,
                 fit_step_s: float = 300.0, history_s: float = 7 * 86400.0) -> None:
        if not mu > 0 or not 0 < target_utilization <= 1.5 or prediction_window_s <= 0:
            raise ConfigError("effective: mu > 0, target utilisation in (0, 1.5], prediction window > 0 s")
        self.mu = mu
        self.target_utilization = target_utilization
        self.prediction_window_s = prediction_window_s
        self.min_replicas = min_replicas
        self.max_replicas = max_replicas
        self.tolerance = tolerance
        self.forecaster = forecaster
        self.refit_every_s = refit_every_s
        self.fit_step_s = fit_step_s
        self.history_s = history_s
        self.feed_ = RollingForecast(forecaster, refit_every_s=refit_every_s, fit_step_s=fit_step_s,
                                     history_s=history_s, max_lead_steps=max(60, math.ceil(prediction_window_s / 60)))
        self.reset()

    def share_feed(self, feed: RollingForecast) -> None:
        """Use ``feed`` (e.g. one already run on the same trace) instead of this policy's own forecast."""
        self.feed_ = feed

    def reset(self) -> None:
        self.hpa_ = HorizontalPodAutoscaler(self.min_replicas, self.max_replicas)

    def decide(self, state: ScalingState) -> ScalingDecision:
        cpu: int | None = None
        pred: int | None = None
        unready = state.replicas - state.ready
        if state.ready >= 1 and math.isfinite(state.utilisation):
            try:
                cpu = replicas_from_counts(state.replicas, self.target_utilization, n_ready=state.ready,
                                           usage_sum=state.utilisation * state.ready, request_sum=float(state.ready),
                                           n_unready=unready, unready_request=float(unready),
                                           tolerance=self.tolerance).replicas
            except ConfigError:
                cpu = None
        window = max(1, min(self.feed_.max_lead_steps, math.ceil(self.prediction_window_s / state.step_s - 1e-9)))
        fc = self.feed_.at(state.history, state.step_s, window) if len(state.history) else None
        peak_cpu = math.nan
        if fc is not None and state.ready >= 1:
            peak_cpu = float(fc.mean.max()) / self.mu  # predicted usage, in replicas' requests
            try:
                pred = replicas_from_counts(state.replicas, self.target_utilization, n_ready=state.ready,
                                            usage_sum=peak_cpu, request_sum=float(state.ready),
                                            n_unready=unready, unready_request=float(unready),
                                            kind="average_value", tolerance=self.tolerance).replicas
            except ConfigError:
                pred = None
        res = self.hpa_.reconcile(state.time_s, state.replicas, [cpu, pred])
        return self._decision(state, res.desired, f"{res.reason}: CPU proposes {cpu}, the predicted peak "
                              f"{peak_cpu:.3g} cores over {self.prediction_window_s:g} s proposes {pred}", {
                                  "cpu_utilisation": state.utilisation, "cpu_proposal": cpu,
                                  "prediction_proposal": pred, "predicted_peak_cpu": peak_cpu,
                                  "condition": res.reason})
