"""The scaling interface: a policy looks at the state of a service and returns a decision with its reasons.

A :class:`Policy` is called once per control period with a :class:`ScalingState` (time, replicas, the load just
observed, CPU utilisation, the load history up to now) and returns a :class:`ScalingDecision`: the desired replica
count, a one-line reason and the ``evidence`` that decided it (forecast, quantile, per-replica capacity, SLO, ...),
so the CLI and the dashboard can say *why*. Policies keep their own memory (stabilisation windows, scale events)
and never read a clock: time comes in with the state.

:class:`ServiceModel` is the capacity model every policy and the replay share: ``mu`` requests per second per
replica (exponential service times), a latency SLO on a quantile of the response time, and the start-up delay of a
new replica. :class:`CapacityTable` answers "how many replicas does this load need to meet the SLO" in O(log n)
from the M/M/c model of :mod:`opsmind.capacity.queueing`.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal

import numpy as np

from opsmind.capacity.queueing import max_rate_for_slo, response_tail
from opsmind.core import ConfigError, FloatArray, Registry

__all__ = [
    "POLICIES",
    "CapacityTable",
    "LoadHistory",
    "Policy",
    "ScalingDecision",
    "ScalingState",
    "ServiceModel",
    "capacity_table",
    "check_table",
]

Action = Literal["scale_out", "scale_in", "hold"]
Evidence = dict[str, float | int | str | None]


@dataclass(frozen=True)
class ServiceModel:
    """Per-replica capacity ``mu`` (req/s), the latency SLO (``slo_quantile`` of the response time <=
    ``slo_latency_s``) and the start-up delay of a new replica (seconds until it serves)."""

    mu: float = 10.0
    slo_latency_s: float = 0.5
    slo_quantile: float = 0.95
    startup_s: float = 120.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.mu) and self.mu > 0):
            raise ConfigError(f"service model: mu (requests per second per replica) must be > 0, got {self.mu}")
        if not (math.isfinite(self.slo_latency_s) and self.slo_latency_s > 0):
            raise ConfigError(f"service model: the SLO latency must be > 0 s, got {self.slo_latency_s}")
        if not 0 < self.slo_quantile < 1:
            raise ConfigError(f"service model: the SLO quantile must be in (0, 1), got {self.slo_quantile}")
        if not (math.isfinite(self.startup_s) and self.startup_s >= 0):
            raise ConfigError(f"service model: the start-up delay must be >= 0 s, got {self.startup_s}")
        idle = -math.log1p(-self.slo_quantile) / self.mu
        if idle > self.slo_latency_s:
            raise ConfigError(
                f"service model: a p{self.slo_quantile * 100:g} latency of {self.slo_latency_s:g} s is below the "
                f"service time alone ({idle:.3g} s at mu = {self.mu:g}/s); no replica count meets it")

    def describe(self) -> str:
        return (f"mu = {self.mu:g} req/s per replica, SLO p{self.slo_quantile * 100:g} <= {self.slo_latency_s:g} s, "
                f"start-up {self.startup_s:g} s")


class CapacityTable:
    """``rate[c - 1]`` = the largest arrival rate ``c`` replicas serve within the SLO (M/M/c), for c = 1..c_max.

    Built with a vectorised bisection on :func:`~opsmind.capacity.queueing.response_tail` (the SLO holds at rate
    ``lam`` exactly when ``P(T > latency) <= 1 - q``, which grows with ``lam``); equal to
    :func:`~opsmind.capacity.queueing.max_rate_for_slo` for each ``c`` (tested), only much faster for a table.
    """

    def __init__(self, model: ServiceModel, c_max: int) -> None:
        if c_max < 1:
            raise ConfigError(f"capacity table: need c_max >= 1, got {c_max}")
        self.model = model
        self.c_max = int(c_max)
        self.rate: FloatArray = _rate_table(model.mu, model.slo_latency_s, model.slo_quantile, self.c_max)

    def replicas(self, load: float) -> int:
        """The fewest replicas that meet the SLO at ``load`` req/s (at least 1; ``c_max + 1`` if beyond the table)."""
        if not load > 0:
            return 1
        return int(np.searchsorted(self.rate, load, side="left")) + 1

    def replicas_many(self, load: FloatArray) -> np.ndarray[Any, np.dtype[np.int64]]:
        """:meth:`replicas` for an array (NaN and <= 0 give 1)."""
        x = np.where(np.isfinite(load) & (load > 0), load, 0.0)
        out: np.ndarray[Any, np.dtype[np.int64]] = np.searchsorted(self.rate, x, side="left").astype(np.int64) + 1
        return out

    def max_rate(self, c: int) -> float:
        """The largest rate ``c`` replicas serve within the SLO (0 for c < 1; linear beyond the table)."""
        if c < 1:
            return 0.0
        if c <= self.c_max:
            return float(self.rate[c - 1])
        return float(self.rate[-1]) / self.c_max * c


@lru_cache(maxsize=32)
def _rate_table_cached(mu: float, latency: float, q: float, c_max: int) -> tuple[float, ...]:
    c = np.arange(1, c_max + 1, dtype=np.float64)
    lo = np.zeros(c_max)
    hi = c * mu * (1.0 - 1e-12)
    ok_hi = np.asarray(response_tail(latency, hi, mu, c)) <= 1.0 - q
    for _ in range(64):
        mid = 0.5 * (lo + hi)
        ok = np.asarray(response_tail(latency, mid, mu, c)) <= 1.0 - q
        lo = np.where(ok, mid, lo)
        hi = np.where(ok, hi, mid)
    rate = np.where(ok_hi, c * mu * (1.0 - 1e-12), lo)
    if float(np.asarray(response_tail(latency, 0.0, mu, 1.0))) > 1.0 - q:  # the service time alone misses it
        rate = np.zeros(c_max)
    return tuple(float(x) for x in rate)


def _rate_table(mu: float, latency: float, q: float, c_max: int) -> FloatArray:
    return np.asarray(_rate_table_cached(float(mu), float(latency), float(q), int(c_max)), dtype=np.float64)


def capacity_table(model: ServiceModel, c_max: int) -> CapacityTable:
    """A (cached) :class:`CapacityTable`."""
    return CapacityTable(model, c_max)


def check_table(table: CapacityTable, cs: tuple[int, ...] = (1, 2, 5, 20)) -> float:
    """Largest relative difference between the table and :func:`max_rate_for_slo` at ``cs`` (a self-check)."""
    m = table.model
    worst = 0.0
    for c in cs:
        if c > table.c_max:
            continue
        ref = max_rate_for_slo(m.mu, c, m.slo_latency_s, m.slo_quantile)
        worst = max(worst, abs(table.max_rate(c) - ref) / max(ref, 1e-12))
    return worst


@dataclass(frozen=True)
class LoadHistory:
    """The observed load up to now: epoch seconds and req/s per step (NaN = not observed). Read-only views."""

    t: FloatArray
    load: FloatArray

    def __len__(self) -> int:
        return int(self.t.shape[0])


@dataclass(frozen=True)
class ScalingState:
    """What a policy sees at the end of one control step.

    ``replicas`` counts every replica the workload asks for (including those still starting), ``ready`` those
    serving. ``load`` is the arrival rate over the step just ended (req/s, NaN when the metric is missing),
    ``utilisation`` the mean CPU utilisation of the ready replicas as a fraction of their request (NaN when
    missing), ``backlog`` the requests still queued.
    """

    time_s: float
    step_s: float
    replicas: int
    ready: int
    load: float
    utilisation: float
    history: LoadHistory
    backlog: float = 0.0


@dataclass(frozen=True)
class ScalingDecision:
    """A policy's answer: ``desired`` replicas (``current`` now), why, and the numbers behind it."""

    time_s: float
    policy: str
    current: int
    desired: int
    reason: str
    evidence: Evidence = field(default_factory=dict)

    @property
    def action(self) -> Action:
        if self.desired > self.current:
            return "scale_out"
        if self.desired < self.current:
            return "scale_in"
        return "hold"

    def explain(self) -> str:
        """One line: the action and its reason."""
        verb = {"scale_out": "scale out", "scale_in": "scale in", "hold": "hold"}[self.action]
        arrow = f"{self.current} -> {self.desired}" if self.desired != self.current else f"{self.current}"
        return f"{self.policy}: {verb} {arrow}: {self.reason}"

    def to_dict(self) -> dict[str, Any]:
        """A JSON/YAML-ready record (timestamps as RFC 3339 UTC)."""
        ts = np.datetime64(round(self.time_s * 1e3), "ms").astype("datetime64[s]")
        return {
            "time": f"{ts}Z",
            "policy": self.policy,
            "action": self.action,
            "current": self.current,
            "desired": self.desired,
            "reason": self.reason,
            "evidence": {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                         for k, v in self.evidence.items()},
        }


class Policy(ABC):
    """Base class of every scaling policy: ``decide(state)`` once per control step, ``reset()`` to start over.

    Constructor arguments are stored unchanged (so :data:`POLICIES` can dump and rebuild a policy); memory lives
    in attributes ending in ``_`` and is cleared by :meth:`reset`.
    """

    name: str = "policy"

    @abstractmethod
    def decide(self, state: ScalingState) -> ScalingDecision:
        """The desired replica count after observing ``state``, with its explanation."""

    @abstractmethod
    def reset(self) -> None:
        """Forget every observation (start a new replay)."""

    def _decision(self, state: ScalingState, desired: int, reason: str, evidence: Evidence) -> ScalingDecision:
        return ScalingDecision(state.time_s, self.name, state.replicas, int(desired), reason, evidence)


POLICIES: Registry[Policy] = Registry("scaling policy")
