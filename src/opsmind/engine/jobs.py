"""The engine's scheduled analyses: load forecasts, capacity and SLO-breach checks, replica recommendations and
rightsizing, each on its own period, over the stored samples.

A job runs at most once per period *slot* (``floor(now / every_s)``) and stamps what it saves with the slot's
start, so a restarted engine that runs a job again in the same slot overwrites its own record instead of adding
one. A job that fails for one service is counted (``opsmind_engine_errors{stage=...}``) and the others go on.

Per service (roles from ``ServiceConfig.roles``):

- **forecast** (``forecast_every_s``): the ``load`` series, resampled to 5-minute buckets, forecast
  ``forecast_horizon_s`` ahead with opsmind's forecaster; saved as a forecast of the series.
- **capacity** (``capacity_every_s``, needs ``slo.latency_ms``, ``load`` and ``latency``): per-replica capacity
  estimated from load and latency (M/M/c), then :func:`~opsmind.capacity.model.predict_breach` on the latest load
  forecast; a ``capacity`` recommendation with ``breach_at``.
- **scale** (``scale_every_s``, needs ``load`` and an SLO): opsmind's predictive policy; a ``scale``
  recommendation with ``replicas`` and ``current``.
- **rightsize** (``rightsize_every_s``, needs ``cpu``): opsmind's rightsizing strategy on CPU (and memory); a
  ``rightsize`` recommendation with ``cpu_request`` and ``memory_request``.

The replica count is the latest sample of the ``replicas`` role, else 1 (the service is sized as one replica,
and the evidence says so).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from opsmind.config import ServiceConfig, Settings
from opsmind.core import Frame, OpsmindError
from opsmind.store import Store
from opsmind.telemetry import Telemetry

__all__ = ["FORECAST_STEP_S", "Jobs"]

FORECAST_STEP_S = 300.0
_LOOKBACK_MAX_S = 14 * 86400.0
_MU_SAMPLES = 5  # latency inversion is a root search per sample (about 0.2 s each)
_MU_REFRESH_S = 86400.0


@dataclass
class _Period:
    every_s: float
    last_slot: float | None = None

    def due(self, now: float) -> float | None:
        """The slot start when the job is due at ``now``, else None."""
        slot = math.floor(now / self.every_s) * self.every_s
        if self.last_slot is not None and slot <= self.last_slot:
            return None
        return float(slot)


class Jobs:
    """Runs the scheduled analyses of one engine (see the module docstring)."""

    def __init__(self, settings: Settings, store: Store, telemetry: Telemetry | None) -> None:
        e = settings.engine
        self.settings = settings
        self.store = store
        self.telemetry = telemetry
        self.tenant = settings.tenant
        self._periods = {"forecast": _Period(e.forecast_every_s), "capacity": _Period(e.capacity_every_s),
                         "scale": _Period(e.scale_every_s), "rightsize": _Period(e.rightsize_every_s)}
        self._forecasts: dict[str, Any] = {}
        self._policies: dict[str, Any] = {}
        self._mus: dict[str, tuple[int, float, float]] = {}  # service -> (replicas, estimated at, mu)
        self.errors: list[str] = []
        self.stopping = threading.Event()  # set to make a running :meth:`run_due` return after its current service
        self.lookback_s = min(max(e.history_s, 2 * e.forecast_horizon_s), _LOOKBACK_MAX_S)

    def any_due(self, now: float) -> bool:
        return any(p.due(now) is not None for p in self._periods.values())

    def run_due(self, now: float, series: Mapping[str, Mapping[str, int]]) -> dict[str, int]:
        """Run every job whose period has a new slot over ``series`` (``{service: {metric: series id}}``);
        returns how many records each saved."""
        done: dict[str, int] = {}
        for name, run in (("forecast", self._forecast), ("capacity", self._capacity), ("scale", self._scale),
                          ("rightsize", self._rightsize)):
            slot = self._periods[name].due(now)
            if slot is None:
                continue
            self._periods[name].last_slot = slot
            n = 0
            for svc in self.settings.services:
                if self.stopping.is_set():
                    return done
                try:
                    n += run(svc, series.get(svc.name, {}), slot, now)
                except (OpsmindError, ValueError, ArithmeticError) as exc:
                    self._error(name, svc.name, exc)
            done[name] = n
        return done

    def _error(self, stage: str, service: str, exc: BaseException) -> None:
        if self.telemetry is not None:
            self.telemetry.error(stage)
        self.errors.append(f"{stage} {service}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}")
        del self.errors[:-20]

    def _frame(self, sid: int, now: float) -> Frame | None:
        try:
            frame = self.store.samples.frame(self.tenant, [sid], now - self.lookback_s, now, columns=["value"])
        except OpsmindError:
            return None
        ok = np.isfinite(frame.values[:, 0])
        return frame if int(ok.sum()) >= 4 else None

    def _arrays(self, sid: int, now: float) -> tuple[np.ndarray, np.ndarray]:
        s = self.store.samples.read(self.tenant, sid, now - self.lookback_s, now)
        ok = np.isfinite(s.values)
        return s.ts[ok], s.values[ok]

    def _replicas(self, svc: ServiceConfig, series: Mapping[str, int]) -> tuple[int, bool]:
        metric = svc.roles.get("replicas")
        if metric and metric in series:
            last = self.store.samples.last(self.tenant, series[metric])
            if last is not None and np.isfinite(last[1]) and last[1] >= 1:
                return round(last[1]), True
        return 1, False

    # -- the jobs ----------------------------------------------------------------------------------------------
    def _forecast(self, svc: ServiceConfig, series: Mapping[str, int], slot: float, now: float) -> int:
        from opsmind.forecast.api import forecast_frame

        metric = svc.roles.get("load")
        if not metric or metric not in series:
            return 0
        frame = self._frame(series[metric], slot)
        if frame is None:
            return 0
        fc, _ = forecast_frame(frame, self.settings.engine.forecast_horizon_s, step_s=FORECAST_STEP_S)
        self.store.forecasts.save(self.tenant, series[metric], fc)
        self._forecasts[svc.name] = fc
        return 1

    def _mu(self, svc: ServiceConfig, series: Mapping[str, int], now: float, replicas: int) -> float:
        """Per-replica capacity from load and latency, re-estimated once a day."""
        known = self._mus.get(svc.name)
        if known is not None and known[0] == replicas and now - known[1] < _MU_REFRESH_S:
            return known[2]
        mu = self._estimate_mu(svc, series, now, replicas)
        self._mus[svc.name] = (replicas, now, mu)
        return mu

    def _estimate_mu(self, svc: ServiceConfig, series: Mapping[str, int], now: float, replicas: int) -> float:
        from opsmind.capacity.model import estimate_capacity

        load_t, load = self._arrays(series[svc.roles["load"]], now)
        lat_t, lat = self._arrays(series[svc.roles["latency"]], now)
        common, i, j = np.intersect1d(load_t, lat_t, return_indices=True)
        if common.shape[0] < 3:
            raise OpsmindError("capacity: fewer than 3 times with both load and latency")
        quantile = svc.slo.latency_quantile if svc.slo is not None else 0.95
        stat: Literal["p95", "p99"] = "p99" if quantile >= 0.99 else "p95"
        order = np.argsort(load[i], kind="stable")  # samples at spread load levels: the median is over them
        pick = order[np.unique(np.linspace(0, order.shape[0] - 1, min(order.shape[0], _MU_SAMPLES)).astype(int))]
        i, j = i[pick], j[pick]
        est = estimate_capacity(load[i], np.full(i.shape[0], float(replicas)), latency_s=lat[j], latency_stat=stat)
        return float(est.mu)

    def _capacity(self, svc: ServiceConfig, series: Mapping[str, int], slot: float, now: float) -> int:
        from opsmind.capacity.model import predict_breach

        slo = svc.slo
        if slo is None or slo.latency_ms is None or not {"load", "latency"} <= set(svc.roles):
            return 0
        if svc.roles["load"] not in series or svc.roles["latency"] not in series:
            return 0
        fc = self._forecasts.get(svc.name)
        if fc is None:
            return 0
        replicas, known = self._replicas(svc, series)
        mu = self._mu(svc, series, now, replicas)
        stamp = np.datetime64(round(now * 1000), "ms")
        pred = predict_breach(fc, now=stamp, mu=mu, replicas=replicas, slo_latency_s=slo.latency_ms / 1000.0,
                              slo_quantile=slo.latency_quantile)
        at = None if pred.at is None else float(np.asarray(pred.at, dtype="datetime64[ms]").astype(np.int64)) / 1e3
        payload = {"breach": pred.breach, "breach_at": at, "minutes_ahead": pred.minutes_ahead,
                   "probability": pred.probability, "bottleneck": pred.bottleneck, "limit_rps": pred.limit_rps,
                   "replicas_needed": pred.replicas_needed, "replicas": replicas, "mu_rps": mu}
        self.store.recommendations.save(
            self.tenant, "capacity", svc.name, slot, summary=pred.explanation, service=svc.name,
            series_id=series[svc.roles["load"]], payload=payload,
            evidence={"method": "M/M/c from load and latency; forecast of the load", "notes": list(pred.notes),
                      "replicas_known": known})
        return 1

    def _scale(self, svc: ServiceConfig, series: Mapping[str, int], slot: float, now: float) -> int:
        from opsmind.scale.base import LoadHistory, ScalingState
        from opsmind.scale.predictive import PredictivePolicy

        slo = svc.slo
        if slo is None or slo.latency_ms is None or not {"load", "latency"} <= set(svc.roles):
            return 0
        if svc.roles["load"] not in series or svc.roles["latency"] not in series:
            return 0
        replicas, known = self._replicas(svc, series)
        policy = self._policies.get(svc.name)
        if policy is None:
            mu = self._mu(svc, series, now, replicas)
            policy = PredictivePolicy(mu=mu, slo_latency_s=slo.latency_ms / 1000.0, slo_quantile=slo.latency_quantile,
                                      min_replicas=max(1, svc.min_replicas), max_replicas=svc.max_replicas,
                                      fit_step_s=FORECAST_STEP_S, history_s=self.lookback_s)
            self._policies[svc.name] = policy
        t, load = self._arrays(series[svc.roles["load"]], now)
        if t.shape[0] < 2:
            return 0
        state = ScalingState(time_s=now, step_s=self.settings.engine.scale_every_s, replicas=replicas,
                             ready=replicas, load=float(load[-1]), utilisation=math.nan,
                             history=LoadHistory(t, load))
        decision = policy.decide(state)
        target = svc.deployment or svc.name
        self.store.recommendations.save(
            self.tenant, "scale", target, slot, summary=decision.explain(), service=svc.name,
            series_id=series[svc.roles["load"]],
            payload={"replicas": decision.desired, "current": decision.current, "action": decision.action,
                     "policy": decision.policy},
            evidence={**decision.evidence, "replicas_known": known})
        return 1

    def _rightsize(self, svc: ServiceConfig, series: Mapping[str, int], slot: float, now: float) -> int:
        from opsmind.rightsize import ForecastAware, Recommendation, WorkloadUsage

        cpu_metric = svc.roles.get("cpu")
        if not cpu_metric or cpu_metric not in series:
            return 0
        cpu = self._frame(series[cpu_metric], now)
        if cpu is None:
            return 0
        mem_metric = svc.roles.get("memory")
        mem = self._frame(series[mem_metric], now) if mem_metric and mem_metric in series else None
        usage = WorkloadUsage(name=svc.name, cpu=cpu, memory=mem, workload=svc.deployment or svc.name)
        rec = ForecastAware().recommend(usage)
        if not isinstance(rec, Recommendation):
            return 0
        payload = {"cpu_request": rec.cpu_request, "cpu_limit": rec.cpu_limit, "memory_request": rec.memory_request,
                   "memory_limit": rec.memory_limit, "workload_class": rec.workload_class, "pattern": rec.pattern,
                   "confidence": rec.confidence,
                   "cpu_schedule": rec.cpu_schedule.to_dict() if rec.cpu_schedule is not None else None}
        self.store.recommendations.save(
            self.tenant, "rightsize", svc.deployment or svc.name, slot, summary=rec.explain(), service=svc.name,
            series_id=series[cpu_metric], payload=payload, evidence={**rec.evidence, "notes": list(rec.notes)})
        return 1
