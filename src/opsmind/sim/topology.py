"""Services and the call graph between them: the static shape of a simulated system.

A :class:`Topology` is a directed acyclic graph of :class:`Service` nodes. Each :class:`Call` edge says that one
request to the caller makes ``ratio`` requests to the callee on average. External traffic enters at ``entry``.
Because the graph is acyclic and the ratios are fixed, how load flows down the graph and how latency and
errors flow back up are linear maps, computed once here (:meth:`Topology.visits`, :meth:`Topology.closure`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from opsmind.core import ConfigError, FloatArray

__all__ = ["Call", "Service", "Topology", "default_topology"]


@dataclass(frozen=True)
class Service:
    """One service: its replicas, how fast it works and what it costs at rest.

    Capacity comes from ``replicas * concurrency`` workers, each serving one request in ``base_latency_s``
    (own work only, without the time spent waiting for callees). ``cpu_limit_cores`` and the ``memory_*``
    sizes are per replica, as in a Kubernetes pod spec.
    """

    name: str
    replicas: int = 2
    concurrency: int = 8
    base_latency_s: float = 0.02
    base_error_ratio: float = 0.001
    cpu_per_request_s: float = 0.004
    cpu_limit_cores: float = 1.0
    memory_base_bytes: float = 256e6
    memory_per_inflight_bytes: float = 0.2e6
    memory_limit_bytes: float = 1e9

    def __post_init__(self) -> None:
        for key in ("replicas", "concurrency", "base_latency_s", "cpu_per_request_s", "cpu_limit_cores",
                    "memory_base_bytes", "memory_limit_bytes"):
            if not getattr(self, key) > 0:
                raise ConfigError(f"service {self.name!r}: {key} must be positive, got {getattr(self, key)!r}")
        if not 0 <= self.base_error_ratio < 1:
            raise ConfigError(f"service {self.name!r}: base_error_ratio must be in [0, 1)")

    @property
    def capacity_rps(self) -> float:
        """Requests per second the service can complete when nothing slows it down."""
        return self.replicas * self.concurrency / self.base_latency_s


@dataclass(frozen=True)
class Call:
    """``caller`` makes ``ratio`` requests to ``callee`` per request it serves."""

    caller: str
    callee: str
    ratio: float = 1.0


@dataclass(frozen=True)
class Topology:
    """A call graph of services (a DAG) with one entry point for external traffic.

    Examples
    --------
    >>> topo = Topology(
    ...     services=(Service("web"), Service("db")),
    ...     calls=(Call("web", "db", ratio=2.0),),
    ...     entry="web",
    ... )
    >>> topo.names, topo.visits().tolist()
    (('web', 'db'), [1.0, 2.0])
    >>> topo.callers("db"), topo.ancestors("db")
    (('web',), frozenset({'web'}))
    """

    services: tuple[Service, ...]
    calls: tuple[Call, ...]
    entry: str
    _index: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        names = [s.name for s in self.services]
        if len(set(names)) != len(names):
            raise ConfigError(f"topology: service names must be unique, got {names}")
        index = {n: i for i, n in enumerate(names)}
        object.__setattr__(self, "_index", index)
        if self.entry not in index:
            raise ConfigError(f"topology: entry {self.entry!r} is not a service")
        for c in self.calls:
            for end in (c.caller, c.callee):
                if end not in index:
                    raise ConfigError(f"topology: call {c.caller}->{c.callee} names unknown service {end!r}")
            if not c.ratio > 0:
                raise ConfigError(f"topology: call {c.caller}->{c.callee} ratio must be positive")
        if np.any(np.linalg.matrix_power(self.ratios() > 0, len(names)) if names else False):
            raise ConfigError("topology: the call graph has a cycle")

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.services)

    def index(self, name: str) -> int:
        try:
            return self._index[name]
        except KeyError:
            raise ConfigError(f"topology: no service {name!r}; services: {', '.join(self.names)}") from None

    def service(self, name: str) -> Service:
        return self.services[self.index(name)]

    def callees(self, name: str) -> tuple[str, ...]:
        return tuple(c.callee for c in self.calls if c.caller == name)

    def callers(self, name: str) -> tuple[str, ...]:
        return tuple(c.caller for c in self.calls if c.callee == name)

    def ancestors(self, name: str) -> frozenset[str]:
        """Every service that reaches ``name`` through calls (its direct and indirect callers)."""
        seen: set[str] = set()
        todo = list(self.callers(name))
        while todo:
            n = todo.pop()
            if n not in seen:
                seen.add(n)
                todo.extend(self.callers(n))
        return frozenset(seen)

    def ratios(self) -> FloatArray:
        """``R[i, j]``: requests to service ``j`` per request served by service ``i``."""
        r = np.zeros((len(self.services), len(self.services)))
        for c in self.calls:
            r[self._index[c.caller], self._index[c.callee]] += c.ratio
        return r

    def closure(self) -> FloatArray:
        """``(I - R)^-1``: the total of a per-request quantity over a request and every call it causes.

        ``closure() @ own_latency`` is each service's end-to-end latency (own work plus callees, in sequence).
        """
        n = len(self.services)
        closure: FloatArray = np.linalg.inv(np.eye(n) - self.ratios()).astype(np.float64)
        return closure

    def visits(self) -> FloatArray:
        """Requests each service receives per request entering at ``entry``."""
        visits: FloatArray = self.closure()[self._index[self.entry]].copy()
        return visits


def default_topology(services: Sequence[Service] | None = None) -> Topology:
    """An 8-service web shop: ``frontend`` calls catalog, cart, recommendation, currency and checkout.

    ``checkout`` calls payment, shipping, cart and currency; ``recommendation`` calls catalog. At the default
    peak traffic (500 requests/s) most services run at about 40-55 % utilisation, leaving room for incidents.
    """
    if services is None:
        services = (
            Service("frontend", concurrency=8, base_latency_s=0.016, cpu_per_request_s=0.002,
                    memory_base_bytes=300e6),
            Service("catalog", concurrency=8, base_latency_s=0.008, cpu_per_request_s=0.001,
                    memory_base_bytes=400e6),
            Service("cart", concurrency=4, base_latency_s=0.012, cpu_per_request_s=0.002,
                    memory_base_bytes=200e6),
            Service("recommendation", concurrency=4, base_latency_s=0.015, cpu_per_request_s=0.004,
                    memory_base_bytes=500e6),
            Service("currency", concurrency=4, base_latency_s=0.006, cpu_per_request_s=0.0015,
                    memory_base_bytes=120e6),
            Service("checkout", concurrency=2, base_latency_s=0.040, cpu_per_request_s=0.010,
                    memory_base_bytes=250e6),
            Service("payment", concurrency=2, base_latency_s=0.040, cpu_per_request_s=0.010,
                    memory_base_bytes=180e6),
            Service("shipping", concurrency=2, base_latency_s=0.030, cpu_per_request_s=0.008,
                    memory_base_bytes=150e6),
        )
    calls = (
        Call("frontend", "catalog", 1.5),
        Call("frontend", "cart", 0.6),
        Call("frontend", "recommendation", 0.5),
        Call("frontend", "currency", 1.0),
        Call("frontend", "checkout", 0.1),
        Call("recommendation", "catalog", 1.0),
        Call("checkout", "payment", 1.0),
        Call("checkout", "shipping", 1.0),
        Call("checkout", "cart", 1.0),
        Call("checkout", "currency", 2.0),
    )
    return Topology(services=tuple(services), calls=calls, entry="frontend")
