"""A peer: Holt-Winters predictive scaling in the style of the Predictive Horizontal Pod Autoscaler (PHPA).

As jthomperoo/predictive-horizontal-pod-autoscaler documents it: every sync the HPA calculation gives a replica
count ("calculated replicas"), which is stored; a Holt-Winters model (additive trend and season, ``seasonalPeriods``
samples per season, ``storedSeasons`` seasons of history) predicts the next value from that history; the decision
is the largest of the calculated count and the predictions (``decisionType: maximum``), clamped to min/max, then
downscale-stabilised (the highest decision of the last ``downscaleStabilization`` = 300 s).

Reimplemented with statsforecast's ``HoltWinters`` (additive errors, i.e. ETS(A,A,A)), which estimates the
smoothing parameters instead of taking fixed alpha/beta/gamma. A season of one day sampled every sync (1440
samples a day) is beyond what an ETS model can fit, so the history of calculated replicas is averaged per hour
(``seasonalPeriods = 24``, ``storedSeasons = 4``) and the model predicts the coming hour, every hour
(``perSyncPeriod`` = one hour): its smoothing parameters are estimated once a day (``refit_every`` = 24 hourly
samples) and, as PHPA does with its fixed parameters, re-applied to the latest history at every prediction.
PHPA's minimum history (``10 + 2 * (seasonalPeriods // 2)`` samples) applies: before that, only the calculated
count is used.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from opsmind.core import ConfigError
from opsmind.scale.base import POLICIES, Policy, ScalingDecision, ScalingState
from opsmind.scale.hpa import replicas_from_counts

__all__ = ["HoltWintersPolicy"]


@POLICIES.register("holt-winters")
class HoltWintersPolicy(Policy):
    """PHPA style: max(HPA-calculated replicas, Holt-Winters prediction of them), 300 s downscale stabilisation."""

    name = "holt-winters"

    def __init__(self, target_utilization: float = 0.7, min_replicas: int = 1, max_replicas: int = 100,
                 tolerance: float = 0.1, sample_s: float = 3600.0, seasonal_periods: int = 24,
                 stored_seasons: int = 4, downscale_stabilization_s: float = 300.0, refit_every: int = 24) -> None:
        if seasonal_periods < 2 or stored_seasons < 2 or sample_s <= 0:
            raise ConfigError("holt-winters: seasonal_periods >= 2, stored_seasons >= 2, sample_s > 0")
        self.target_utilization = target_utilization
        self.min_replicas = min_replicas
        self.max_replicas = max_replicas
        self.tolerance = tolerance
        self.sample_s = sample_s
        self.seasonal_periods = seasonal_periods
        self.stored_seasons = stored_seasons
        self.downscale_stabilization_s = downscale_stabilization_s
        self.refit_every = max(1, refit_every)
        self.fit_seconds = 0.0
        self.n_fits = 0
        self.reset()

    def reset(self) -> None:
        self.bucket_: int | None = None
        self.acc_: list[float] = []
        self.samples_: list[float] = []
        self.prediction_: int | None = None
        self.decisions_: list[tuple[float, int]] = []
        self.note_ = ""
        self.model_: Any = None
        self.since_fit_ = 0

    def _calculated(self, state: ScalingState) -> int | None:
        if state.ready < 1 or not math.isfinite(state.utilisation):
            return None
        unready = state.replicas - state.ready
        try:
            return replicas_from_counts(state.replicas, self.target_utilization, n_ready=state.ready,
                                        usage_sum=state.utilisation * state.ready, request_sum=float(state.ready),
                                        n_unready=unready, unready_request=float(unready),
                                        tolerance=self.tolerance).replicas
        except ConfigError:
            return None

    def _predict(self) -> None:
        from statsforecast.models import HoltWinters

        need = 10 + 2 * (self.seasonal_periods // 2)
        y = np.asarray(self.samples_[-self.seasonal_periods * self.stored_seasons:], dtype=np.float64)
        y = y[np.isfinite(y)]
        if y.size < need:
            self.prediction_ = None
            self.note_ = f"Holt-Winters needs {need} hourly samples, has {y.size}"
            return
        import time

        start = time.perf_counter()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                if self.model_ is None or self.since_fit_ >= self.refit_every:
                    self.model_ = HoltWinters(season_length=self.seasonal_periods, error_type="A").fit(y)
                    self.since_fit_ = 0
                    self.n_fits += 1
                self.since_fit_ += 1
                value = float(self.model_.forward(y=y, h=1)["mean"][0])
        except Exception as exc:  # PHPA skips a model that fails and uses the others
            self.prediction_ = None
            self.note_ = f"Holt-Winters failed ({type(exc).__name__}): skipped"
            return
        finally:
            self.fit_seconds += time.perf_counter() - start
        self.prediction_ = math.ceil(value) if math.isfinite(value) else None
        self.note_ = f"Holt-Winters on {y.size} hourly samples predicts {value:.3g}"

    def decide(self, state: ScalingState) -> ScalingDecision:
        calc = self._calculated(state)
        bucket = int(state.time_s // self.sample_s)
        if self.bucket_ is None:
            self.bucket_ = bucket
        if bucket != self.bucket_:  # an hour ended: store its mean, refit, predict the next hour
            self.samples_.append(float(np.mean(self.acc_)) if self.acc_ else math.nan)
            self.samples_ += [math.nan] * (bucket - self.bucket_ - 1)
            self.samples_ = self.samples_[-self.seasonal_periods * self.stored_seasons:]
            self.acc_ = []
            self.bucket_ = bucket
            self._predict()
        if calc is not None:
            self.acc_.append(float(calc))
        candidates = [c for c in (calc, self.prediction_) if c is not None]
        if not candidates:
            return self._decision(state, state.replicas, "no CPU metric and no prediction: no change",
                                  {"calculated": None, "predicted": None})
        target = min(max(max(candidates), self.min_replicas), self.max_replicas)
        now = state.time_s
        self.decisions_ = [(t, r) for t, r in self.decisions_ if t >= now - self.downscale_stabilization_s]
        self.decisions_.append((now, target))
        desired = max(r for _, r in self.decisions_)
        return self._decision(state, desired, f"max(calculated {calc}, predicted {self.prediction_}) = {target}; "
                              f"highest over {self.downscale_stabilization_s:g} s = {desired}. {self.note_}",
                              {"calculated": calc, "predicted": self.prediction_, "stabilised": desired})
