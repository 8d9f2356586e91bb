"""Run the simulator fast-forward: hours of metrics as :class:`~opsmind.core.Frame` objects, with ground truth."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from opsmind.core import ConfigError, Frame
from opsmind.sim.incidents import Incident, schedule
from opsmind.sim.system import GAUGES, System
from opsmind.sim.topology import Topology, default_topology

__all__ = ["DEFAULT_START_S", "Simulation", "simulate"]

DEFAULT_START_S = 1704067200.0  # 2024-01-01T00:00:00Z: a fixed start keeps runs reproducible


@dataclass(frozen=True)
class Simulation:
    """The metrics of every service (one frame each, columns :data:`GAUGES`) and the incidents injected."""

    frames: dict[str, Frame]
    incidents: tuple[Incident, ...]
    topology: Topology

    def wide(self) -> Frame:
        """One frame with a ``service:metric`` column per service and metric."""
        names = list(self.frames)
        first = self.frames[names[0]]
        values = np.hstack([self.frames[n].values for n in names])
        columns = tuple(f"{n}:{c}" for n in names for c in first.columns)
        return Frame(first.timestamps, values, columns, name="sim")

    def labels(self, service: str) -> npt.NDArray[np.bool_]:
        """Ground truth: whether an incident rooted at ``service`` is active at each row."""
        frame = self.frames[service]
        t = frame.seconds()
        out = np.zeros(len(frame), dtype=bool)
        for inc in self.incidents:
            if inc.target == service:
                out |= (t >= inc.start_s) & (t < inc.end_s)
        return out


def simulate(
    hours: float = 24.0,
    *,
    step_s: float = 15.0,
    seed: int = 0,
    start_s: float = DEFAULT_START_S,
    topology: Topology | None = None,
    incidents: Sequence[Incident] | None = None,
    every_s: float = 900.0,
    duration_s: float = 300.0,
    **system_params: Any,
) -> Simulation:
    """Simulate ``hours`` of ``topology`` at ``step_s`` resolution from ``start_s`` (epoch seconds).

    ``incidents=None`` injects a seeded :func:`~opsmind.sim.incidents.schedule` (one incident every
    ``every_s`` seconds lasting ``duration_s``); pass ``()`` for a quiet system or a list of your own.
    ``system_params`` go to :class:`~opsmind.sim.system.System` (``peak_rps``, ``noise``, ...).

    Examples
    --------
    >>> sim = simulate(hours=2.0, seed=7)
    >>> len(sim.frames["frontend"]), sim.frames["cart"].columns[:2], len(sim.incidents)
    (480, ('rate_rps', 'latency_mean_s'), 8)
    >>> bool(sim.labels(sim.incidents[0].target).any())
    True
    """
    if not hours > 0 or not step_s > 0:
        raise ConfigError(f"simulate: hours and step_s must be positive, got {hours}, {step_s}")
    topo = topology if topology is not None else default_topology()
    n = round(hours * 3600.0 / step_s)
    times = start_s + step_s * np.arange(1, n + 1, dtype=np.float64)
    if incidents is None:
        incidents = schedule(topo, start_s, float(times[-1]), every_s=every_s, duration_s=duration_s, seed=seed)
    system = System(topo, incidents=incidents, seed=seed, **system_params)
    gauges = system.advance(times, step_s)
    stamps = np.round(times * 1e9).astype(np.int64).astype("datetime64[ns]")
    frames = {
        name: Frame(stamps, np.column_stack([gauges[g][:, i] for g in GAUGES]), GAUGES, name=name)
        for i, name in enumerate(topo.names)
    }
    return Simulation(frames=frames, incidents=tuple(incidents), topology=topo)
