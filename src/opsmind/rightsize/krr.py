"""Robusta KRR's ``simple`` strategy (``krr-simple``), reimplemented from its documented behaviour.

- CPU request = the 95th percentile of usage (per pod, Prometheus' linear-interpolation quantile over the
  history; the largest over the pods); no CPU limit.
- Memory request = memory limit = the peak working set (largest over the pods) + 15 %; with
  ``use_oomkill_data``, at least the memory limit the container was OOM-killed at + 25 %.
- "Not enough data" (undefined) with fewer than 100 samples, or a history shorter than 3 hours.
- History: the last 14 days (336 h). Values are rounded up to whole millicores and megabytes (10**6 bytes),
  and are at least 10 millicores and 100 MB (KRR's ``cpu_min_value`` / ``memory_min_value``).

KRR's HPA check (no recommendation for a resource an HPA scales on, unless ``allow_hpa``) needs the cluster's
HPA objects, which usage data does not carry: it is not applied here.
"""

from __future__ import annotations

import math
from typing import Annotated, ClassVar

import numpy as np
from pydantic import BaseModel, BeforeValidator, Field

from opsmind.rightsize.base import RECOMMENDERS, Recommendation, Recommender, Undefined, WorkloadUsage
from opsmind.sources.timeparse import parse_duration

__all__ = ["KRRSettings", "KRRSimple"]

DurationS = Annotated[float, BeforeValidator(parse_duration)]


class KRRSettings(BaseModel):
    """KRR ``simple`` strategy settings (defaults are KRR's)."""

    cpu_percentile: float = Field(95.0, gt=0, le=100, description="The percentile to use for the CPU request.")
    memory_buffer_percentage: float = Field(15.0, gt=0, description="Buffer added to the peak memory (percent).")
    points_required: int = Field(100, ge=1, description="Samples needed to make a recommendation.")
    history_duration: DurationS = Field(336 * 3600.0, gt=0, description="History used (e.g. 14d).")
    min_history: DurationS = Field(3 * 3600.0, ge=0, description="Shortest history that gives a recommendation.")
    use_oomkill_data: bool = Field(False, description="Bump memory after OOM kills (KRR: experimental).")
    oom_memory_buffer_percentage: float = Field(25.0, ge=0, description="Buffer over the memory at an OOM kill.")
    cpu_min_value: float = Field(10.0, ge=0, description="Minimum CPU recommendation (millicores).")
    memory_min_value: float = Field(100.0, ge=0, description="Minimum memory recommendation (megabytes, 10**6).")


def _round_cpu(cores: float, minimum_m: float) -> float:
    return max(math.ceil(cores * 1000.0 - 1e-9) / 1000.0, minimum_m / 1000.0)


def _round_memory(nbytes: float, minimum_mb: float) -> float:
    return max(math.ceil(nbytes / 1e6 - 1e-9) * 1e6, minimum_mb * 1e6)


@RECOMMENDERS.register("krr-simple")
class KRRSimple(Recommender):
    """KRR-simple-compatible recommendations (see the module docstring)."""

    Settings: ClassVar[type[BaseModel]] = KRRSettings
    settings: KRRSettings

    def _recommend(self, data: WorkloadUsage) -> Recommendation | Undefined:
        s = self.settings
        t_all, _ = data.cpu_samples()
        data = data.window(float(t_all[-1]) - s.history_duration + 1e-9, None)
        t, _ = data.cpu_samples()
        span = float(t[-1] - t[0]) if t.size else 0.0
        if span < s.min_history:
            return Undefined(data.name, self.name, f"not enough data: {span / 3600:.1f} h of history, KRR needs "
                             f"{s.min_history / 3600:g} h")
        if t.size < s.points_required:
            return Undefined(data.name, self.name, f"not enough data: {t.size} CPU samples, KRR needs "
                             f"{s.points_required}")
        per_pod = [np.percentile(col[np.isfinite(col)], s.cpu_percentile)
                   for col in data.cpu.values.T if np.isfinite(col).any()]
        cpu_req = _round_cpu(float(max(per_pod)), s.cpu_min_value)
        notes: list[str] = []
        mem: float | None = None
        _, mv = data.memory_samples()
        if mv.size >= s.points_required:
            mem_raw = float(mv.max()) * (1 + s.memory_buffer_percentage / 100.0)
            if s.use_oomkill_data and data.oom_kills:
                at_kill = data.current.memory_limit or float(mv.max())  # KRR reads the limit the pod was killed at
                mem_raw = max(mem_raw, at_kill * (1 + s.oom_memory_buffer_percentage / 100.0))
                notes.append("OOMKill detected")
            mem = _round_memory(mem_raw, s.memory_min_value)
        elif mv.size:
            notes.append(f"memory: undefined, because there are only {mv.size} memory samples (KRR needs "
                         f"{s.points_required})")
        else:
            notes.append("memory: undefined, because there are no memory (working set) samples")
        return Recommendation(
            workload=data.name, strategy=self.name, cpu_request=cpu_req, cpu_limit=None,
            memory_request=mem, memory_limit=mem,
            confidence=min(1.0, span / (7 * 86400.0)),
            reason=f"CPU P{s.cpu_percentile:g} of usage, no CPU limit; memory = peak + {s.memory_buffer_percentage:g} %"
                   " (KRR simple)",
            evidence={"cpu_samples": int(t.size), "history_h": round(span / 3600.0, 3)},
            notes=tuple(notes),
        )
