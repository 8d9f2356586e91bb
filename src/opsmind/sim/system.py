"""The discrete-time simulation of a microservice system: traffic in, metrics out.

Each :meth:`System.step` covers the interval ``(t - dt, t]`` and never reads a clock. Per step:

1. External traffic at the entry is ``peak_rps`` times a daily shape (lowest at 03:00 UTC, highest at 15:00)
   times slow log-normal noise; a ``traffic_spike`` adds load at its target.
2. Load flows down the call graph with the call ratios (:meth:`Topology.visits`).
3. Each service is a multi-server queue (``replicas * concurrency`` workers). The mean wait below saturation
   follows Sakasegawa's M/M/c approximation, which grows like ``1 / (1 - rho)``; above saturation the excess
   waits in a backlog, requests older than ``timeout_s`` are dropped and counted as errors.
4. A service's latency is its own (service time + wait + injected delay) plus that of the calls it makes;
   its error ratio combines its own failures with those of its callees (a request fails if any call fails).
5. CPU is work done plus what a hog steals; memory is the base per replica, in-flight requests and leaks.

Two hooks let a remediation act on the running system (``opsmind demo``): :meth:`System.set_replicas` changes a
service's replica count (capacity, CPU limit and memory follow from the next step), and :meth:`System.restart`
restarts a service's replicas one at a time: the memory a leak had taken is freed (a leak active then stops)
and for ``restart_s`` seconds one replica is missing (a brief capacity dip). Without
these calls the simulation is exactly what it was.

Quantiles are approximations good enough for a simulator: own time has fixed p50/p95 multipliers, waits are
exponential, and end-to-end quantiles add up along the call graph (an upper bound).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from opsmind.capacity.queueing import carry_backlog
from opsmind.core import ConfigError, FloatArray
from opsmind.sim.incidents import Effects, Incident, effects
from opsmind.sim.topology import Topology, default_topology

__all__ = ["GAUGES", "Snapshot", "System", "daily_shape"]

GAUGES: tuple[str, ...] = (
    "rate_rps", "latency_mean_s", "latency_p50_s", "latency_p95_s", "error_ratio", "cpu_cores", "memory_bytes",
    "utilisation",
)
_P50, _P95 = 0.8, 2.2  # own service time quantile / mean: less variable than exponential
_IDLE_CORES = 0.02  # per replica


def daily_shape(t: float | FloatArray, trough: float = 0.2) -> float | FloatArray:
    """Traffic as a fraction of the daily peak at epoch seconds ``t``: ``trough`` at 03:00, 1.0 at 15:00 UTC."""
    if isinstance(t, float | int):
        return trough + (1.0 - trough) * (0.5 - 0.5 * math.cos(2.0 * math.pi * (t / 3600.0 - 3.0) / 24.0))
    hour = (np.asarray(t, dtype=np.float64) % 86400.0) / 3600.0
    shape: FloatArray = trough + (1.0 - trough) * (0.5 - 0.5 * np.cos(2.0 * np.pi * (hour - 3.0) / 24.0))
    return shape


@dataclass(frozen=True)
class Snapshot:
    """The state after one step: gauges for the step and cumulative counters, one value per service.

    Arrays are never modified after the snapshot is made, so another thread (a /metrics server) may read it.
    """

    t: float
    names: tuple[str, ...]
    rate_rps: FloatArray
    latency_mean_s: FloatArray
    latency_p50_s: FloatArray
    latency_p95_s: FloatArray
    error_ratio: FloatArray
    cpu_cores: FloatArray
    memory_bytes: FloatArray
    utilisation: FloatArray
    requests_total: FloatArray
    errors_total: FloatArray
    cpu_seconds_total: FloatArray
    latency_seconds_total: FloatArray

    def gauges(self, name: str) -> dict[str, float]:
        """The :data:`GAUGES` of one service."""
        i = self.names.index(name)
        return {g: float(getattr(self, g)[i]) for g in GAUGES}


class System:
    """A seeded, deterministic simulation of ``topology`` under daily traffic and scheduled incidents.

    Time comes in with each call (epoch seconds); the simulation never reads a clock. The same seed and the same
    calls give the same numbers, and :meth:`advance` over many times equals :meth:`step` at each of them.

    Parameters
    ----------
    topology
        Services and call graph (default: :func:`~opsmind.sim.topology.default_topology`).
    incidents
        Faults to inject; each names its target (the root cause) and its window.
    seed
        Seed of every random draw (traffic noise, latency jitter, request and error counts).
    peak_rps
        External requests per second at the entry service at the daily peak (15:00 UTC).
    trough
        Night-time traffic as a fraction of the peak.
    noise
        Standard deviation of the slow log-normal traffic noise.
    timeout_s
        Requests waiting longer than this in a saturated service's backlog are dropped (errors).

    Works well for: reproducible metrics with a known root cause for detection, forecasting and RCA tests.
    Works poorly for: absolute realism (quantiles are approximations; no retries, no autoscaling yet).

    Examples
    --------
    >>> sys_ = System(seed=1)
    >>> for k in range(1, 5):
    ...     snap = sys_.step(43200.0 + 15.0 * k, 15.0)
    >>> snap.names[:3], round(float(snap.utilisation[0]), 1), bool(snap.requests_total[0] > 10_000)
    (('frontend', 'catalog', 'cart'), 0.4, True)
    """

    def __init__(
        self,
        topology: Topology | None = None,
        *,
        incidents: Sequence[Incident] = (),
        seed: int = 0,
        peak_rps: float = 500.0,
        trough: float = 0.2,
        noise: float = 0.04,
        timeout_s: float = 2.0,
    ) -> None:
        self.topology = topology if topology is not None else default_topology()
        self.incidents = tuple(incidents)
        self.seed = seed
        self.peak_rps = peak_rps
        self.trough = trough
        self.noise = noise
        self.timeout_s = timeout_s
        if not peak_rps > 0 or not 0 < trough <= 1 or noise < 0 or not timeout_s > 0:
            raise ConfigError("System: peak_rps and timeout_s must be positive, trough in (0, 1], noise >= 0")
        for inc in self.incidents:
            self.topology.index(inc.target)
        svc = self.topology.services
        self._closure = self.topology.closure()
        self._visits = self.topology.visits()
        self._entry = self.topology.index(self.topology.entry)
        self._workers = np.array([s.replicas * s.concurrency for s in svc], dtype=np.float64)
        self._base_s = np.array([s.base_latency_s for s in svc])
        self._base_err = np.array([s.base_error_ratio for s in svc])
        self._cpu_req = np.array([s.cpu_per_request_s for s in svc])
        self._cpu_max = np.array([s.replicas * s.cpu_limit_cores for s in svc])
        self._replicas = np.array([float(s.replicas) for s in svc])
        self._mem_base = np.array([s.memory_base_bytes for s in svc])
        self._mem_inflight = np.array([s.memory_per_inflight_bytes for s in svc])
        self._mem_limit = np.array([s.memory_limit_bytes for s in svc])
        self._sakasegawa = np.sqrt(2.0 * (self._workers + 1.0))
        self._rng = np.random.default_rng(seed)
        n = len(svc)
        self._names = self.topology.names
        self._t = -math.inf
        self._restarts: dict[int, tuple[float, float]] = {}  # service -> (restart time, seconds a replica is down)
        self._lock = threading.Lock()  # the hooks may be called from another thread than the one stepping
        self._z = 0.0
        self._backlog = np.zeros(n)
        self._totals: tuple[FloatArray, ...] = tuple(np.zeros(n) for _ in range(4))
        self.snapshot: Snapshot | None = None

    # -- hooks for remediation (not used by the plain simulation) ------------------------------------------------
    def replicas(self, name: str) -> int:
        """The current replica count of service ``name``."""
        return int(self._replicas[self.topology.index(name)])

    def set_replicas(self, name: str, replicas: int) -> int:
        """Run ``replicas`` replicas of service ``name`` from the next step on; returns the previous count."""
        if int(replicas) != replicas or replicas < 1:
            raise ConfigError(f"System.set_replicas: {name}: replicas must be a positive integer, got {replicas!r}")
        i = self.topology.index(name)
        svc = self.topology.services[i]
        with self._lock:
            before = int(self._replicas[i])
            self._replicas[i] = float(replicas)
            self._workers[i] = float(replicas * svc.concurrency)
            self._cpu_max[i] = replicas * svc.cpu_limit_cores
            self._sakasegawa[i] = math.sqrt(2.0 * (self._workers[i] + 1.0))
        return before

    def restart(self, name: str, at: float, restart_s: float = 30.0) -> None:
        """Restart service ``name`` at ``at`` (seconds): leaked memory is freed from then on (a leak active at
        ``at`` stops), and one replica is missing for ``restart_s`` seconds (a rolling restart)."""
        if not restart_s >= 0:
            raise ConfigError(f"System.restart: {name}: restart_s must be >= 0, got {restart_s!r}")
        i = self.topology.index(name)
        with self._lock:
            self._restarts[i] = (float(at), float(restart_s))

    def restarted_at(self, name: str) -> float | None:
        """When service ``name`` was last restarted (None: never)."""
        got = self._restarts.get(self.topology.index(name))
        return None if got is None else got[0]

    def _apply_restarts(self, eff: Effects, times: FloatArray, dt: float) -> FloatArray:
        """Free the memory leaked before each service's restart (a leak active then stops: the state that leaked
        is gone; a leak that starts later acts as usual), and the capacity factor per step and service (one replica
        missing for the part of each step that overlaps the restart)."""
        factor = np.ones((len(times), len(self._base_s)))
        for i, (at, down_s) in self._restarts.items():
            after = times >= at
            if not after.any():
                continue
            leaked = np.zeros(len(times))
            for inc in self.incidents:
                if inc.kind == "memory_leak" and inc.start_s >= at and self.topology.index(inc.target) == i:
                    on = (times >= inc.start_s) & (times < inc.end_s)
                    leaked[on] += inc.size * (times[on] - inc.start_s)
            eff.leaked_bytes[:, i] = np.where(after, leaked, eff.leaked_bytes[:, i])
            overlap = np.clip(np.minimum(times, at + down_s) - np.maximum(times - dt, at), 0.0, dt) / dt
            factor[:, i] = 1.0 - overlap / max(self._replicas[i], 1.0)
        return factor

    def step(self, t: float, dt: float) -> Snapshot:
        """Advance over ``(t - dt, t]`` and return (and keep in ``snapshot``) the state at ``t``."""
        self.advance(np.array([float(t)]), dt)
        assert self.snapshot is not None
        return self.snapshot

    def advance(self, times: npt.ArrayLike, dt: float) -> dict[str, FloatArray]:
        """Take one step of ``dt`` seconds ending at each of ``times``; return each :data:`GAUGES` as ``(T, S)``.

        The same as calling :meth:`step` for each time in turn (same numbers, same final state), only faster.
        """
        with self._lock:
            return self._advance(np.asarray(times, dtype=np.float64), dt)

    def _advance(self, times: FloatArray, dt: float) -> dict[str, FloatArray]:
        if not dt > 0 or times.ndim != 1 or len(times) == 0:
            raise ConfigError(f"System.advance: need dt > 0 and a 1-D array of times, got dt={dt}, {times.shape}")
        if np.any(np.diff(times) <= 0) or times[0] <= self._t:
            raise ConfigError("System.advance: times must increase and follow the last step")
        self._t = float(times[-1])
        n_t, n_s = len(times), len(self._base_s)
        z = self._rng.standard_normal((n_t, 4, n_s))
        eff = effects(self.incidents, self.topology, times)
        factor = self._apply_restarts(eff, times, dt) if self._restarts else None
        phi = math.exp(-dt / 600.0)  # traffic noise decorrelates over about ten minutes
        ar = np.empty(n_t)
        for k in range(n_t):
            self._z = phi * self._z + math.sqrt(1.0 - phi * phi) * float(z[k, 0, 0])
            ar[k] = self._z
        entry_rps = self.peak_rps * daily_shape(times, self.trough) * np.exp(self.noise * ar)
        external = (eff.load_multiplier - 1.0) * np.outer(entry_rps, self._visits)
        external[:, self._entry] += entry_rps
        arrivals = external @ self._closure

        mem_frac = (self._mem_base + eff.leaked_bytes) / self._mem_limit
        gc_slow = 1.0 + np.clip((mem_frac - 0.75) * 4.0, 0.0, 1.0)
        service_s = self._base_s * gc_slow / (1.0 - eff.cpu_stolen)
        capacity = self._workers / service_s
        if factor is not None:
            capacity = capacity * factor
        backlog, offered, dropped = self._queue(arrivals, capacity, dt)

        rho = np.clip(arrivals / capacity, 1e-6, 0.98)
        drain = capacity * (1.0 - rho)
        backlog_wait = backlog / capacity
        p_wait = rho ** (self._sakasegawa - 1.0)  # = mean wait * drain, an Erlang-C-like probability of waiting
        jitter = np.exp(0.03 * z[:, 1])
        own_mean = (service_s + p_wait / drain + backlog_wait) * jitter + eff.latency_add_s
        own_p50 = (service_s * _P50 + np.maximum(np.log(p_wait * 2.0), 0.0) / drain + backlog_wait) * jitter
        own_p95 = (service_s * _P95 + np.maximum(np.log(p_wait * 20.0), 0.0) / drain + backlog_wait) * jitter

        oom = (mem_frac >= 0.98) * 0.1
        n_expected = arrivals * dt
        own_err = np.minimum(self._base_err + eff.error_add + p_wait * np.exp(-drain * self.timeout_s) + oom
                             + dropped / np.maximum(n_expected, 1e-9), 0.999)
        err_expected = -np.expm1(np.log1p(-own_err) @ self._closure.T)
        # Normal approximations of Poisson counts: much cheaper to draw, and fine at these rates.
        requests = np.maximum(np.round(n_expected + np.sqrt(n_expected) * z[:, 2]), 0.0)
        e_expected = err_expected * requests
        errors = np.clip(np.round(e_expected + np.sqrt(e_expected) * z[:, 3]), 0.0, requests)

        latency_mean = own_mean @ self._closure.T
        cpu = np.minimum(np.minimum(requests / dt, capacity) * self._cpu_req + _IDLE_CORES * self._replicas
                         + eff.cpu_stolen * self._cpu_max, self._cpu_max)
        per_replica = np.minimum(self._mem_base + eff.leaked_bytes, self._mem_limit)
        memory = (per_replica * self._replicas + arrivals * own_mean * self._mem_inflight) * (1.0 + 0.005 * z[:, 1])
        gauges = {
            "rate_rps": requests / dt,
            "latency_mean_s": latency_mean,
            "latency_p50_s": (own_p50 + eff.latency_add_s) @ self._closure.T,
            "latency_p95_s": (own_p95 + eff.latency_add_s) @ self._closure.T,
            "error_ratio": errors / np.maximum(requests, 1.0),
            "cpu_cores": cpu,
            "memory_bytes": memory,
            "utilisation": np.minimum(offered / capacity, 1.0),
        }
        self._totals = tuple(total + step.sum(axis=0) for total, step in zip(
            self._totals, (requests, errors, cpu * dt, requests * latency_mean), strict=True))
        requests_total, errors_total, cpu_total, latency_total = self._totals
        self.snapshot = Snapshot(
            t=float(times[-1]), names=self._names, **{g: v[-1] for g, v in gauges.items()},
            requests_total=requests_total, errors_total=errors_total, cpu_seconds_total=cpu_total,
            latency_seconds_total=latency_total,
        )
        return gauges

    def _queue(self, arrivals: FloatArray, capacity: FloatArray, dt: float) -> tuple[FloatArray, ...]:
        """Carry the backlog over saturation: returns backlog, offered rate and dropped requests per step."""
        b = self._backlog
        if not np.any(arrivals + b / dt > capacity):  # the usual case: no step is saturated
            backlog = np.zeros_like(arrivals)
            offered = arrivals.copy()
            offered[0] += b / dt
            self._backlog = np.zeros_like(b)
            return backlog, offered, np.zeros_like(arrivals)
        backlog, offered, dropped, self._backlog = carry_backlog(arrivals, capacity, dt, self.timeout_s, b)
        return backlog, offered, dropped
        limit = capacity * self.timeout_s
        for k in range(len(arrivals)):
            offered[k] = arrivals[k] + b / dt
            excess = np.maximum(offered[k] - capacity[k], 0.0) * dt
            dropped[k] = np.maximum(excess - limit[k], 0.0)
            b = backlog[k] = excess - dropped[k]
        self._backlog = b
        return backlog, offered, dropped
