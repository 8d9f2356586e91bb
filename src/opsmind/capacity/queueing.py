"""M/M/c queueing: the Erlang C probability of waiting, waiting and response times, and their quantiles.

A service with ``c`` replicas, each completing ``mu`` requests per second (exponential service times), receiving
Poisson arrivals at ``lam`` requests per second. The offered load is ``a = lam / mu`` Erlangs and the utilisation
``rho = a / c``; the queue is stable only when ``rho < 1``. The formulas are the textbook ones (Kleinrock, *Queueing
Systems* vol. 1, section 3.5; Harchol-Balter, *Performance Modeling and Design of Computer Systems*, chapter 14):

* Erlang B by the recursion ``B(0) = 1``, ``B(k) = a B(k-1) / (k + a B(k-1))`` (numerically stable for large ``c``);
* Erlang C from it, ``C = c B / (c - a (1 - B))``: the probability that an arriving request waits;
* the wait ``Wq`` is 0 with probability ``1 - C`` and exponential with rate ``theta = c mu - lam`` otherwise, so
  ``E[Wq] = C / theta`` and ``P(Wq > t) = C exp(-theta t)``;
* the response time is ``T = Wq + S`` with ``S ~ Exp(mu)``; its tail is
  ``P(T > t) = (1 - C) e^(-mu t) + C (theta e^(-mu t) - mu e^(-theta t)) / (theta - mu)``
  (``e^(-mu t) (1 + mu t)`` in place of the fraction when ``theta == mu``).

Every function takes scalars or NumPy arrays (broadcast together) and returns floats or arrays. An unstable queue
(``rho >= 1``) has ``C = 1`` and infinite waits and quantiles, never an exception, so callers can ask "what if" for
any load.

>>> round(erlang_c(2, 1.0), 6)        # M/M/2 at rho = 0.5: 2 rho^2 / (1 + rho) = 1/3
0.333333
>>> q = MMc(lam=8.0, mu=1.0, c=10)
>>> round(q.p_wait, 4), round(q.mean_wait, 4)
(0.4092, 0.2046)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.optimize import brentq

from opsmind.core import ConfigError

__all__ = [
    "MMc",
    "carry_backlog",
    "erlang_b",
    "erlang_c",
    "max_rate_for_slo",
    "mean_response",
    "replicas_for_slo",
    "response_quantile",
    "response_tail",
]

ArrayLike = npt.ArrayLike
Num = float | npt.NDArray[np.float64]
_F = npt.NDArray[np.float64]


def _out(x: npt.NDArray[np.float64]) -> Num:
    return float(x) if x.ndim == 0 else x


def erlang_b(c: ArrayLike, a: ArrayLike) -> Num:
    """Blocking probability of an M/M/c/c loss system with ``c`` servers and offered load ``a`` Erlangs."""
    c_arr = np.asarray(c)
    a_arr = np.asarray(a, dtype=np.float64)
    if np.any(c_arr < 0) or np.any(a_arr < 0) or not np.all(np.equal(np.mod(c_arr, 1), 0)):
        raise ConfigError("erlang_b: servers must be whole numbers >= 0 and the load >= 0")
    c_arr, a_arr = np.broadcast_arrays(c_arr.astype(np.int64), a_arr)
    b = np.ones(c_arr.shape, dtype=np.float64)
    top = int(c_arr.max()) if c_arr.size else 0
    for k in range(1, top + 1):
        step = a_arr * b / (k + a_arr * b)
        b = np.where(k <= c_arr, step, b)
    return _out(b)


def erlang_c(c: ArrayLike, a: ArrayLike) -> Num:
    """Probability that an arrival waits in M/M/c with offered load ``a`` Erlangs; 1 when ``a >= c``."""
    c_arr = np.asarray(c, dtype=np.float64)
    a_arr = np.asarray(a, dtype=np.float64)
    if np.any(c_arr < 1):
        raise ConfigError("erlang_c: need at least one server")
    b = np.asarray(erlang_b(c, a), dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = c_arr * b / (c_arr - a_arr * (1.0 - b))
    p = np.where(a_arr >= c_arr, 1.0, np.clip(p, 0.0, 1.0))
    return _out(np.asarray(p, dtype=np.float64))


def _check(lam: ArrayLike, mu: ArrayLike, c: ArrayLike) -> tuple[npt.NDArray[np.float64], ...]:
    lam_a = np.asarray(lam, dtype=np.float64)
    mu_a = np.asarray(mu, dtype=np.float64)
    c_a = np.asarray(c, dtype=np.float64)
    if np.any(~np.isfinite(lam_a)) or np.any(lam_a < 0):
        raise ConfigError("queueing: the arrival rate must be a finite number >= 0")
    if np.any(~np.isfinite(mu_a)) or np.any(mu_a <= 0):
        raise ConfigError("queueing: the service rate per replica must be a finite number > 0")
    if np.any(c_a < 1) or not np.all(np.equal(np.mod(c_a, 1), 0)):
        raise ConfigError("queueing: replicas must be whole numbers >= 1")
    return tuple(np.broadcast_arrays(lam_a, mu_a, c_a))


def mean_response(lam: ArrayLike, mu: ArrayLike, c: ArrayLike) -> Num:
    """Mean response time ``E[Wq] + 1/mu`` in seconds (``inf`` when unstable)."""
    lam_a, mu_a, c_a = _check(lam, mu, c)
    p = np.asarray(erlang_c(c_a, lam_a / mu_a), dtype=np.float64)
    theta = c_a * mu_a - lam_a
    with np.errstate(divide="ignore"):
        w = np.where(theta > 0, p / np.where(theta > 0, theta, 1.0), np.inf)
    return _out(w + 1.0 / mu_a)


def response_tail(t: ArrayLike, lam: ArrayLike, mu: ArrayLike, c: ArrayLike) -> Num:
    """``P(T > t)``: the probability that a request takes longer than ``t`` seconds (1 when unstable)."""
    lam_a, mu_a, c_a = _check(lam, mu, c)
    t_a = np.asarray(t, dtype=np.float64)
    t_a, lam_a, mu_a, c_a = np.broadcast_arrays(t_a, lam_a, mu_a, c_a)
    p = np.asarray(erlang_c(c_a, lam_a / mu_a), dtype=np.float64)
    theta = c_a * mu_a - lam_a
    em = np.exp(-mu_a * t_a)
    diff = theta - mu_a
    close = np.abs(diff) < 1e-9 * mu_a
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        hypo = np.where(close, em * (1.0 + mu_a * t_a),
                        (theta * em - mu_a * np.exp(-theta * t_a)) / np.where(close, 1.0, diff))
    tail = (1.0 - p) * em + p * hypo
    tail = np.where(theta <= 0, 1.0, np.clip(tail, 0.0, 1.0))
    tail = np.where(t_a <= 0, 1.0, tail)
    return _out(np.asarray(tail, dtype=np.float64))


def response_quantile(q: float, lam: ArrayLike, mu: ArrayLike, c: ArrayLike) -> Num:
    """The ``q`` quantile (e.g. 0.95) of the response time in seconds; ``inf`` when the queue is unstable."""
    if not 0.0 < q < 1.0:
        raise ConfigError(f"response_quantile: q must be in (0, 1), got {q}")
    lam_a, mu_a, c_a = _check(lam, mu, c)
    out = np.empty(lam_a.shape, dtype=np.float64)
    for idx in np.ndindex(lam_a.shape):
        la, m, k = float(lam_a[idx]), float(mu_a[idx]), float(c_a[idx])
        if la >= k * m:
            out[idx] = math.inf
            continue
        lo = -math.log1p(-q) / m  # the service time alone: T >= S
        if float(response_tail(lo, la, m, k)) <= 1.0 - q:
            out[idx] = lo
            continue
        hi = lo * 2.0
        while float(response_tail(hi, la, m, k)) > 1.0 - q:
            hi *= 2.0
        out[idx] = brentq(lambda x, la=la, m=m, k=k: float(response_tail(x, la, m, k)) - (1.0 - q), lo, hi,
                          xtol=1e-12, rtol=1e-10)
    return _out(out)


def max_rate_for_slo(mu: float, c: int, latency_s: float, q: float = 0.95) -> float:
    """The largest arrival rate (req/s) at which the ``q`` quantile of the response time stays <= ``latency_s``.

    0 when even an idle service misses the target (the service time alone is too long).
    """
    _check(0.0, mu, c)
    if not latency_s > 0:
        raise ConfigError(f"max_rate_for_slo: the latency target must be > 0, got {latency_s}")
    if float(response_quantile(q, 0.0, mu, c)) > latency_s:
        return 0.0
    hi = c * mu * (1.0 - 1e-12)
    if float(response_quantile(q, hi, mu, c)) <= latency_s:
        return hi
    return float(brentq(lambda lam: float(response_quantile(q, lam, mu, c)) - latency_s, 0.0, hi, xtol=1e-9 * hi))


def replicas_for_slo(lam: float, mu: float, latency_s: float, q: float = 0.95, max_utilisation: float = 1.0,
                     limit: int = 100_000) -> int:
    """The fewest replicas that keep the ``q`` latency quantile <= ``latency_s`` and utilisation <= the cap.

    Raises :class:`ConfigError` when no number of replicas can meet the target (the service time alone is too long).
    """
    _check(lam, mu, 1)
    if not 0 < max_utilisation <= 1:
        raise ConfigError(f"replicas_for_slo: max_utilisation must be in (0, 1], got {max_utilisation}")
    alone = float(response_quantile(q, 0.0, mu, 1))
    if alone > latency_s:
        raise ConfigError(
            f"replicas_for_slo: a {latency_s:g} s p{q * 100:g} target is below the service time alone "
            f"(p{q * 100:g} of one request = {alone:.3g} s); no replica count meets it")
    c = max(1, math.ceil(lam / (mu * max_utilisation) - 1e-12))
    if lam / (c * mu) >= 1.0:
        c += 1
    while float(response_quantile(q, lam, mu, c)) > latency_s:
        c += 1
        if c > limit:
            raise ConfigError(f"replicas_for_slo: more than {limit} replicas needed")
    return c


@dataclass(frozen=True)
class MMc:
    """One M/M/c operating point: arrival rate ``lam`` (req/s), per-replica rate ``mu`` (req/s), ``c`` replicas."""

    lam: float
    mu: float
    c: int

    def __post_init__(self) -> None:
        _check(self.lam, self.mu, self.c)

    @property
    def offered_load(self) -> float:
        return self.lam / self.mu

    @property
    def utilisation(self) -> float:
        return self.lam / (self.c * self.mu)

    @property
    def stable(self) -> bool:
        return self.utilisation < 1.0

    @property
    def p_wait(self) -> float:
        return float(erlang_c(self.c, self.offered_load))

    @property
    def mean_wait(self) -> float:
        return float(mean_response(self.lam, self.mu, self.c)) - 1.0 / self.mu

    @property
    def mean_response(self) -> float:
        return float(mean_response(self.lam, self.mu, self.c))

    def quantile(self, q: float) -> float:
        return float(response_quantile(q, self.lam, self.mu, self.c))

    def tail(self, t: float) -> float:
        return float(response_tail(t, self.lam, self.mu, self.c))


def carry_backlog(arrivals: _F, capacity: _F, dt: float, timeout_s: float,
                  backlog0: float | _F = 0.0) -> tuple[_F, _F, _F, _F]:
    """Queue over saturation, step by step: returns (backlog, offered rate, dropped, final backlog).

    Step ``k`` offers ``arrivals[k] + backlog[k-1] / dt`` (req/s); what exceeds ``capacity[k]`` stays in the
    backlog (requests), except what would wait longer than ``timeout_s`` (``capacity * timeout_s`` requests),
    which is dropped. Works on 1-D arrays (one service over time) or 2-D ``(time, services)``.
    """
    arrivals = np.asarray(arrivals, dtype=np.float64)
    capacity = np.asarray(capacity, dtype=np.float64)
    backlog = np.empty_like(arrivals)
    offered = np.empty_like(arrivals)
    dropped = np.zeros_like(arrivals)
    b = np.asarray(backlog0, dtype=np.float64)
    limit = capacity * timeout_s
    for k in range(arrivals.shape[0]):
        offered[k] = arrivals[k] + b / dt
        excess = np.maximum(offered[k] - capacity[k], 0.0) * dt
        dropped[k] = np.maximum(excess - limit[k], 0.0)
        b = backlog[k] = excess - dropped[k]
    return backlog, offered, dropped, np.asarray(b, dtype=np.float64)
