"""Incidents with a known root cause: what they are, when they happen and what they do to the target service.

An :class:`Incident` acts on one service (its root cause) for a time window. Its direct effect is on the target
only (:func:`effects`); the simulator then carries it through the call graph: slower or failing callees make
their callers slower or fail, and extra load flows down to the callees. The meaning of ``magnitude`` depends on
the kind:

=====================  ================================================================================
kind                   magnitude
=====================  ================================================================================
``cpu_hog``            fraction of the target's CPU limit taken by a noisy neighbour (0-1); requests slow
``memory_leak``        bytes per second leaked per replica; near the limit, GC pauses and OOM errors
``latency_injection``  seconds added to each request the target serves
``error_burst``        fraction of the target's requests that fail (0-1)
``traffic_spike``      multiplier of the traffic arriving at the target from outside
=====================  ================================================================================
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal, get_args

import numpy as np

from opsmind.core import ConfigError, FloatArray
from opsmind.sim.topology import Topology

__all__ = ["DEFAULT_MAGNITUDE", "KINDS", "Effects", "Incident", "IncidentKind", "effects", "schedule"]

IncidentKind = Literal["cpu_hog", "memory_leak", "latency_injection", "error_burst", "traffic_spike"]
KINDS: tuple[IncidentKind, ...] = get_args(IncidentKind)

DEFAULT_MAGNITUDE: dict[IncidentKind, float] = {
    "cpu_hog": 0.4,
    "memory_leak": 1.5e6,
    "latency_injection": 0.15,
    "error_burst": 0.2,
    "traffic_spike": 1.7,
}


@dataclass(frozen=True)
class Incident:
    """One injected fault: ``kind`` on service ``target`` from ``start_s`` for ``duration_s`` seconds.

    Times are seconds since the Unix epoch, the same clock the simulator steps on.

    Examples
    --------
    >>> inc = Incident("cpu_hog", "cart", start_s=600.0, duration_s=300.0)
    >>> inc.magnitude, inc.end_s, inc.active(700.0), inc.active(900.0)
    (0.4, 900.0, True, False)
    """

    kind: IncidentKind
    target: str
    start_s: float
    duration_s: float
    magnitude: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"incident kind {self.kind!r} is not one of {', '.join(KINDS)}")
        if not self.duration_s > 0:
            raise ConfigError(f"incident {self.kind} on {self.target!r}: duration_s must be positive")
        if self.magnitude is None:
            object.__setattr__(self, "magnitude", DEFAULT_MAGNITUDE[self.kind])

    @property
    def size(self) -> float:
        """``magnitude`` as a float (the kind's default when none was given)."""
        return float(self.magnitude if self.magnitude is not None else DEFAULT_MAGNITUDE[self.kind])

    @property
    def end_s(self) -> float:
        return self.start_s + self.duration_s

    def active(self, t: float) -> bool:
        """Whether the incident acts at time ``t`` (the window is ``[start_s, end_s)``)."""
        return self.start_s <= t < self.end_s

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Effects:
    """Direct effects of the active incidents: one row per instant, one column per service (topology order)."""

    cpu_stolen: FloatArray
    latency_add_s: FloatArray
    error_add: FloatArray
    load_multiplier: FloatArray
    leaked_bytes: FloatArray


def effects(incidents: Iterable[Incident], topology: Topology, times: FloatArray) -> Effects:
    """The direct effects of every incident at each of ``times`` (seconds) on its target, as ``(T, S)`` arrays."""
    shape = (len(times), len(topology.services))
    eff = Effects(np.zeros(shape), np.zeros(shape), np.zeros(shape), np.ones(shape), np.zeros(shape))
    first, last = float(times[0]), float(times[-1])
    for inc in incidents:
        if inc.end_s <= first or inc.start_s > last:
            continue
        on = (times >= inc.start_s) & (times < inc.end_s)
        i = topology.index(inc.target)
        m = inc.size
        if inc.kind == "cpu_hog":
            eff.cpu_stolen[on, i] = np.minimum(eff.cpu_stolen[on, i] + m, 0.95)
        elif inc.kind == "memory_leak":
            eff.leaked_bytes[on, i] += m * (times[on] - inc.start_s)
        elif inc.kind == "latency_injection":
            eff.latency_add_s[on, i] += m
        elif inc.kind == "error_burst":
            eff.error_add[on, i] = np.minimum(eff.error_add[on, i] + m, 1.0)
        else:
            eff.load_multiplier[on, i] *= m
    return eff


def schedule(
    topology: Topology,
    start_s: float,
    end_s: float,
    *,
    every_s: float = 900.0,
    duration_s: float = 300.0,
    first_s: float | None = None,
    kinds: Sequence[IncidentKind] = KINDS,
    seed: int = 0,
) -> list[Incident]:
    """Incidents one after another from ``start_s + first_s`` until ``end_s``, ``every_s`` apart.

    Kinds cycle through ``kinds`` in a seeded random order; each incident's target is drawn (seeded) among
    the services that have callers, so its effect can be seen travelling up the graph, except a
    ``traffic_spike``, which hits the entry service. ``first_s`` defaults to one ``duration_s``.

    Examples
    --------
    >>> from opsmind.sim.topology import default_topology
    >>> incs = schedule(default_topology(), 0.0, 3600.0, every_s=900.0, seed=1)
    >>> len(incs), [i.start_s for i in incs]
    (4, [300.0, 1200.0, 2100.0, 3000.0])
    >>> incs == schedule(default_topology(), 0.0, 3600.0, every_s=900.0, seed=1)
    True
    """
    if every_s < duration_s:
        raise ConfigError(f"schedule: every_s ({every_s}) must be at least duration_s ({duration_s})")
    if not kinds:
        raise ConfigError("schedule: no incident kinds given")
    rng = np.random.default_rng(seed)
    order = [kinds[int(i)] for i in rng.permutation(len(kinds))]
    inner = [n for n in topology.names if topology.callers(n)]
    if not inner:
        raise ConfigError("schedule: the topology has no service with a caller")
    out: list[Incident] = []
    t = start_s + (duration_s if first_s is None else first_s)
    while t + duration_s <= end_s:
        kind = order[len(out) % len(order)]
        target = topology.entry if kind == "traffic_spike" else inner[int(rng.integers(len(inner)))]
        out.append(Incident(kind, target, start_s=t, duration_s=duration_s))
        t += every_s
    return out
