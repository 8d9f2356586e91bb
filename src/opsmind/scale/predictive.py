"""opsmind's predictive scaling policy: replicas for the forecast load over the start-up delay, priced by the SLO.

Every control step:

1. **Scale out ahead.** Replicas asked for now serve only after the start-up delay, so the decision covers the
   ``H`` steps after it (``startup_s + margin_s``). The rolling forecast (:class:`~opsmind.scale.feed.RollingForecast`)
   gives, for each of those steps, the mean load and the distribution of its own recent errors (calibrated,
   split-conformal). With the capacity model (M/M/c, :class:`~opsmind.scale.base.CapacityTable`: the largest load
   ``c`` replicas serve within the SLO) this gives ``P(SLO violation | c replicas)`` per step, and the policy takes
   the ``c`` that minimises ``c + violation_cost * P(violation)`` (a newsvendor: a violating minute is priced at
   ``violation_cost`` replica-minutes, so cheap insurance is bought and expensive insurance is not). Without enough
   calibration errors yet, the upper bound of the forecast's ``level`` % interval is sized for instead.
   ``max_utilisation`` keeps the forecast mean at or below that share of the replicas' capacity (headroom for
   what the model does not know); the load observed now (with any backlog) is a reactive floor.
2. **Scale in only on observed demand, after stabilisation.** The count goes down only to the larger of the need
   over every step of the horizon (removing a replica acts at once) and the highest need of the load *observed*
   over the last ``stabilisation_s``, never within ``cooldown_s`` of a scale-out, by at most
   ``max(scale_in_pods, scale_in_percent %)`` per step.
3. Scale-out is limited to ``max(scale_out_pods, scale_out_percent %)`` per step; ``min_replicas`` /
   ``max_replicas`` bound everything.

Every decision carries its evidence: the forecast (method, mean and upper bound at the decisive step, the level
correction), the quantile or the expected violation probability, the per-replica capacity ``mu`` and the capacity
at the chosen count, the SLO. Without a forecast yet (too little history) or without an observation (a gap), the
decision says so: the policy then scales out on the observed load only, and does not scale in.

Defaults: ``violation_cost = 50`` and ``max_utilisation = 0.7`` (the HPA's usual CPU target) were chosen among
a few values (violation cost 30/50/100/300, utilisation 0.7/0.8/1.0, and a fixed forecast quantile instead) on
``opsmind bench autoscale``; see docs/benchmarks.md for what they give, trace by trace.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from typing import Any

import numpy as np

from opsmind.core import ConfigError
from opsmind.scale.base import POLICIES, CapacityTable, Evidence, Policy, ScalingDecision, ScalingState, ServiceModel
from opsmind.scale.feed import RollingForecast, ShortForecast

__all__ = ["PredictivePolicy"]


@POLICIES.register("opsmind")
class PredictivePolicy(Policy):
    """opsmind's default scaling policy (see the module docstring)."""

    name = "opsmind"

    def __init__(
        self,
        mu: float = 10.0,
        slo_latency_s: float = 0.5,
        slo_quantile: float = 0.95,
        startup_s: float = 120.0,
        level: int | None = None,
        margin_s: float = 180.0,
        stabilisation_s: float = 300.0,
        cooldown_s: float = 300.0,
        scale_out_pods: int = 4,
        scale_out_percent: float = 100.0,
        scale_in_pods: int = 1,
        scale_in_percent: float = 10.0,
        min_replicas: int = 1,
        max_replicas: int = 100,
        forecaster: str | Mapping[str, Any] = "opsmind",
        refit_every_s: float = 86400.0,
        fit_step_s: float = 300.0,
        history_s: float = 7 * 86400.0,
        level_window_s: float = 900.0,
        residual: str = "sqrt",
        max_utilisation: float = 0.7,
        violation_cost: float | None = 50.0,
    ) -> None:
        if not 1 <= min_replicas <= max_replicas:
            raise ConfigError(f"opsmind policy: need 1 <= min_replicas <= max_replicas, "
                              f"got {min_replicas}/{max_replicas}")
        if margin_s < 0 or stabilisation_s < 0 or cooldown_s < 0:
            raise ConfigError("opsmind policy: margin, stabilisation and cooldown must be >= 0 s")
        if not 0 < max_utilisation <= 1 or (violation_cost is not None and violation_cost < 0):
            raise ConfigError("opsmind policy: max_utilisation in (0, 1] and violation_cost >= 0")
        if residual not in ("sqrt", "ratio"):
            raise ConfigError(f"opsmind policy: residual must be sqrt or ratio, got {residual!r}")
        if scale_out_pods < 1 or scale_in_pods < 1 or scale_out_percent <= 0 or not 0 < scale_in_percent <= 100:
            raise ConfigError("opsmind policy: scale limits must be positive (scale-in percent at most 100)")
        self.mu = mu
        self.slo_latency_s = slo_latency_s
        self.slo_quantile = slo_quantile
        self.startup_s = startup_s
        self.level = level
        self.margin_s = margin_s
        self.stabilisation_s = stabilisation_s
        self.cooldown_s = cooldown_s
        self.scale_out_pods = scale_out_pods
        self.scale_out_percent = scale_out_percent
        self.scale_in_pods = scale_in_pods
        self.scale_in_percent = scale_in_percent
        self.min_replicas = min_replicas
        self.max_replicas = max_replicas
        self.forecaster = forecaster
        self.refit_every_s = refit_every_s
        self.fit_step_s = fit_step_s
        self.history_s = history_s
        self.level_window_s = level_window_s
        self.residual = residual
        self.max_utilisation = max_utilisation
        self.violation_cost = violation_cost
        self.model_ = ServiceModel(mu, slo_latency_s, slo_quantile, startup_s)
        # By default the forecast bound is the SLO's own quantile: the upper bound of the central interval whose
        # upper tail is 1 - slo_quantile (p95 SLO -> the 90 % interval's upper bound = the 95th percentile).
        self.level_ = int(level) if level is not None else max(1, min(99, round(200 * slo_quantile - 100)))
        self.table_ = CapacityTable(self.model_, max(2 * max_replicas, 200))
        self.feed_ = RollingForecast(forecaster, refit_every_s=refit_every_s, fit_step_s=fit_step_s,
                                     history_s=history_s, level=self.level_,
                                     level_window_s=level_window_s, residual=residual)
        self.reset()

    def share_feed(self, feed: RollingForecast) -> None:
        """Use ``feed`` (e.g. one already run on the same trace) instead of this policy's own forecast."""
        self.feed_ = feed

    def reset(self) -> None:
        self.observed_: deque[tuple[float, int]] = deque()
        self.last_out_ = -math.inf

    def horizon(self, step_s: float) -> int:
        return max(1, math.ceil((self.startup_s + self.margin_s) / step_s - 1e-9) + 1)

    def _newsvendor(self, fc: ShortForecast, startup: int) -> tuple[int, int, float]:
        """Replicas minimising ``replicas + violation_cost * P(violation)`` per minute, over the leads after the
        start-up delay (scale-out) and over every lead (hold); and the violation probability of the first."""
        tb = self.table_
        lam = float(self.violation_cost or 0.0)
        lo = tb.replicas(float(fc.mean.max()))
        hi = min(max(tb.replicas(float(fc.upper.max())), lo) * 2 + 2, self.max_replicas)
        hi = max(hi, lo)
        cs = np.arange(lo, hi + 1)
        rates = np.array([tb.max_rate(int(c)) for c in cs]) if hi > tb.c_max else tb.rate[cs - 1]
        p = fc.exceed_prob(rates)
        out = []
        for rows in (p[startup:], p):
            pv = rows.mean(axis=0)
            j = int(np.argmin(cs + lam * pv))
            out.append((int(cs[j]), float(pv[j])))
        return out[0][0], out[1][0], out[0][1]

    def decide(self, state: ScalingState) -> ScalingDecision:
        tb = self.table_
        cur = state.replicas
        now = state.time_s
        h = self.horizon(state.step_s)
        observed = state.load if math.isfinite(state.load) else math.nan
        ev: Evidence = {"slo": f"p{self.slo_quantile * 100:g} <= {self.slo_latency_s:g} s", "mu_rps": self.mu,
                        "level": self.level_, "horizon_s": h * state.step_s, "observed_rps": observed}
        # Reactive floor: the rate offered now (arrivals + backlog).
        need_now = tb.replicas(observed + state.backlog / state.step_s) if math.isfinite(observed) else 0
        if math.isfinite(observed):
            self.observed_.append((now, tb.replicas(observed)))
        while self.observed_ and self.observed_[0][0] <= now - self.stabilisation_s:
            self.observed_.popleft()
        fc = self.feed_.at(state.history, state.step_s, h) if len(state.history) else None
        startup = min(h - 1, math.ceil(self.startup_s / state.step_s - 1e-9))
        if fc is not None:
            # Replicas asked for now serve from lead startup + 1: the scale-out need covers leads after the
            # start-up delay; holding (or scaling in, which acts at once) must cover every lead.
            i = startup + int(fc.upper[startup:].argmax())
            peak = float(fc.upper[i])
            cap = self.mu * self.max_utilisation
            priced = self.violation_cost is not None and bool(fc.samples)
            pv = math.nan
            if priced:
                need_fc, need_hold, pv = self._newsvendor(fc, startup)
                ev["expected_violation"] = round(pv, 4)
                ev["violation_cost"] = self.violation_cost
            else:
                need_fc, need_hold = tb.replicas(peak), tb.replicas(float(fc.upper.max()))
            by_util = math.ceil(float(fc.mean[startup:].max()) / cap - 1e-9)
            need_fc = max(need_fc, by_util)
            need_hold = max(need_hold, math.ceil(float(fc.mean.max()) / cap - 1e-9))
            ev.update({"forecast_method": fc.method, "forecast_mean_rps": float(fc.mean[i]),
                       "forecast_upper_rps": peak, "peak_lead_s": (i + 1) * state.step_s,
                       "quantile": f"upper {self.level_} % bound" + (" (calibrated)" if fc.calibrated else
                                                                   " (forecaster interval)"),
                       "level_ratio": round(fc.level_ratio, 4), "max_utilisation": self.max_utilisation})
            span = f"{(startup + 1) * state.step_s:g}-{h * state.step_s:g} s ahead"
            if by_util >= need_fc and by_util > 0:
                why = (f"forecast mean up to {float(fc.mean[startup:].max()):.4g} req/s {span} needs {need_fc} "
                       f"at {self.max_utilisation * 100:g} % utilisation")
            elif priced:
                why = (f"forecast {float(fc.mean[i]):.4g} req/s (upper {self.level_} % bound {peak:.4g}) {span}: "
                       f"{need_fc} replicas minimise replicas + {self.violation_cost:g} x P(SLO violation), "
                       f"P = {pv:.3f}")
            else:
                why = f"forecast upper {self.level_} % bound {peak:.4g} req/s {span} needs {need_fc}"
        else:
            need_fc = need_hold = 0
            why = "no forecast yet (too little history): reacting to the observed load"
        target = max(need_fc, need_now, self.min_replicas)
        ev["need_forecast"] = need_fc
        ev["need_observed_now"] = need_now
        if target > cur:
            limit = max(cur + self.scale_out_pods, math.ceil(cur * (1.0 + self.scale_out_percent / 100.0)))
            desired = min(target, limit, self.max_replicas)
            self.last_out_ = now
            reason = f"scale out ahead: {why}" if need_fc >= need_now else (
                f"observed load {observed:.4g} req/s (+ backlog) needs {need_now}; {why}")
        else:
            recent = max((c for _, c in self.observed_), default=math.inf)
            floor = max(need_hold, int(recent) if math.isfinite(recent) else cur, self.min_replicas)
            ev["need_observed_window"] = None if not math.isfinite(recent) else int(recent)
            if fc is None or not math.isfinite(observed):
                desired, reason = cur, f"hold: {why if fc is None else 'no observation this step'}; no scale-in"
            elif floor >= cur:
                desired, reason = cur, f"hold: {why}; observed need over {self.stabilisation_s:g} s is {recent:g}"
            elif now - self.last_out_ < self.cooldown_s:
                desired, reason = cur, f"hold: cooldown ({self.cooldown_s:g} s after the last scale-out)"
            else:
                step = max(self.scale_in_pods, math.floor(cur * self.scale_in_percent / 100.0))
                desired = max(floor, cur - step)
                reason = (f"scale in: observed need over {self.stabilisation_s:g} s is {recent:g} and {why}")
        desired = min(max(desired, self.min_replicas), self.max_replicas)
        ev["capacity_rps_at_desired"] = round(tb.max_rate(desired), 4)
        return self._decision(state, desired, reason, ev)
