"""The rightsizing interface: usage history in, a recommendation (or the reason there is none) out.

A :class:`WorkloadUsage` is what a strategy sees for one container of one workload: CPU usage in cores and (when
known) memory working set in bytes, one column per pod, on the data's own time grid; the current requests and
limits; OOM kills and restarts in the window; the CFS throttled share. Time comes with the data: nothing here
reads a clock.

A :class:`Recommender` (one per strategy, registered in :data:`RECOMMENDERS`) has typed pydantic ``Settings``
(field descriptions become CLI help) and ``recommend(data)`` returning a :class:`Recommendation` or an
:class:`Undefined` that says why not. Every strategy first runs the shared data checks
(:func:`check_usage`: no CPU samples, every sample missing, negative or all-zero usage), so bad or empty data
gives an "undefined, because ..." answer, never an exception.

Units: CPU in cores (0.25 = 250m), memory in bytes.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ValidationError

from opsmind.core import ConfigError, DataError, FloatArray, Frame, Registry

__all__ = [
    "GIB",
    "MIB",
    "RECOMMENDERS",
    "Evidence",
    "Recommendation",
    "Recommender",
    "Resources",
    "Schedule",
    "Undefined",
    "WorkloadUsage",
    "build_recommender",
    "check_usage",
    "fmt_cpu",
    "fmt_memory",
]

MIB = 1024.0**2
GIB = 1024.0**3
DAY_S = 86400.0
WEEK_S = 7 * DAY_S
MONDAY_S = 4 * DAY_S  # 1970-01-05 00:00 UTC, a Monday: weekly schedules start there
Evidence = dict[str, float | int | str | None]


def fmt_cpu(cores: float | None) -> str:
    """Cores the way Kubernetes writes them.

    Examples
    --------
    >>> fmt_cpu(0.25), fmt_cpu(1.5), fmt_cpu(2.0), fmt_cpu(None)
    ('250m', '1500m', '2', '-')
    """
    if cores is None or not math.isfinite(cores):
        return "-"
    milli = math.ceil(round(cores * 1000.0, 6))
    return f"{milli // 1000}" if milli % 1000 == 0 else f"{milli}m"


def fmt_memory(nbytes: float | None) -> str:
    """Bytes as a Kubernetes quantity in Mi (Gi when whole), rounded up.

    Examples
    --------
    >>> fmt_memory(256 * MIB), fmt_memory(2 * GIB), fmt_memory(1.5 * MIB + 1), fmt_memory(None)
    ('256Mi', '2Gi', '2Mi', '-')
    """
    if nbytes is None or not math.isfinite(nbytes):
        return "-"
    mib = math.ceil(round(nbytes / MIB, 6))
    return f"{mib // 1024}Gi" if mib % 1024 == 0 and mib > 0 else f"{mib}Mi"


@dataclass(frozen=True)
class Resources:
    """Requests and limits of one container (cores, bytes); None = not set or not known."""

    cpu_request: float | None = None
    cpu_limit: float | None = None
    memory_request: float | None = None
    memory_limit: float | None = None


@dataclass(frozen=True, eq=False)
class WorkloadUsage:
    """Usage history of one container of one workload (see the module docstring).

    ``cpu`` and ``memory`` hold one column per pod (a pod that did not exist at a time has NaN there).
    ``oom_kills`` are the Unix times of OOM kills seen in the window; ``restarts`` counts restarts of any
    reason; ``throttled_share`` is CFS throttled periods over periods (0..1). ``replicas`` is the mean number of
    running pods (None: counted from the data).
    """

    name: str
    cpu: Frame
    memory: Frame | None = None
    namespace: str = ""
    workload: str = ""
    container: str = ""
    kind: str = "Deployment"
    current: Resources = field(default_factory=Resources)
    oom_kills: tuple[float, ...] = ()
    restarts: float = 0.0
    throttled_share: float | None = None
    replicas: float | None = None
    notes: tuple[str, ...] = ()

    @classmethod
    def from_frame(
        cls,
        frame: Frame,
        *,
        name: str | None = None,
        cpu_column: str | None = None,
        memory_column: str | None = None,
        cpu_scale: float = 1.0,
    ) -> WorkloadUsage:
        """One workload from a frame with a CPU column (cores) and an optional memory column (bytes).

        Columns are found by name when not given: ``cpu_cores``/``cpu``/anything with "cpu" for CPU,
        ``memory_bytes``/``memory``/anything with "mem" for memory; a single column is CPU. ``cpu_scale``
        converts the CPU column to cores (0.001 for millicores, 0.01 for percent of one core).
        """
        where = name or frame.name or "input"
        cols = list(frame.columns)
        cpu_col = cpu_column or _guess(cols, ("cpu_cores", "cpu"), "cpu") or (cols[0] if len(cols) == 1 else None)
        if cpu_col is None or cpu_col not in cols:
            raise DataError(f"no CPU column (expected cpu_cores; columns: {', '.join(cols)})", where=where)
        mem_col = memory_column or _guess([c for c in cols if c != cpu_col], ("memory_bytes", "memory"), "mem")
        if memory_column is not None and memory_column not in cols:
            raise DataError(f"no memory column {memory_column!r} (columns: {', '.join(cols)})", where=where)
        cpu = Frame(frame.timestamps, frame.values[:, [cols.index(cpu_col)]] * cpu_scale, (where,), where,
                    frame.notes)
        mem = None
        if mem_col is not None:
            mem = Frame(frame.timestamps, frame.values[:, [cols.index(mem_col)]], (where,), where)
        return cls(name=where, cpu=cpu, memory=mem, workload=where, notes=frame.notes)

    @classmethod
    def from_metrics(cls, m: Any) -> WorkloadUsage:
        """From a :class:`opsmind.sources.kube_metrics.ContainerMetrics` (read by attribute name)."""
        return cls(
            name=m.name, cpu=m.cpu, memory=m.memory, namespace=m.namespace, workload=m.workload,
            container=m.container, kind=m.kind,
            current=Resources(m.cpu_request, m.cpu_limit, m.memory_request, m.memory_limit),
            oom_kills=tuple(m.oom_kills), restarts=float(m.restarts), throttled_share=m.throttled_share,
            notes=tuple(m.notes),
        )

    @property
    def pods(self) -> int:
        return self.cpu.ndim

    def history_s(self) -> float:
        """Seconds from the first to the last CPU sample that is not missing (0 with fewer than two)."""
        t = self.cpu.seconds()
        ok = np.isfinite(self.cpu.values).any(axis=1) if len(self.cpu) and self.cpu.ndim else np.zeros(0, bool)
        if ok.sum() < 2:
            return 0.0
        tt = t[ok]
        return float(tt[-1] - tt[0])

    def step_s(self) -> float:
        """The median spacing of the CPU samples (60 s when there are fewer than two)."""
        t = self.cpu.seconds()
        if t.size < 2:
            return 60.0
        return float(np.median(np.diff(t)))

    def cpu_samples(self) -> tuple[FloatArray, FloatArray]:
        """Every finite CPU sample of every pod, flattened: ``(times, cores)`` sorted by time."""
        return _flatten(self.cpu)

    def memory_samples(self) -> tuple[FloatArray, FloatArray]:
        """Every finite memory sample of every pod, flattened: ``(times, bytes)``."""
        if self.memory is None:
            return np.zeros(0), np.zeros(0)
        return _flatten(self.memory)

    def mean_replicas(self) -> float:
        """``replicas`` when set, else the mean number of pods with a CPU sample per timestamp (at least 1)."""
        if self.replicas is not None:
            return float(self.replicas)
        if len(self.cpu) == 0 or self.cpu.ndim == 0:
            return 1.0
        counts = np.isfinite(self.cpu.values).sum(axis=1)
        counts = counts[counts > 0]
        return float(counts.mean()) if counts.size else 1.0

    def window(self, start_s: float | None = None, end_s: float | None = None) -> WorkloadUsage:
        """The same workload with samples in ``[start_s, end_s)`` only (OOM kills too)."""
        def cut(frame: Frame) -> Frame:
            t = frame.seconds()
            keep = np.ones(t.shape, dtype=bool)
            if start_s is not None:
                keep &= t >= start_s
            if end_s is not None:
                keep &= t < end_s
            return Frame(frame.timestamps[keep], frame.values[keep], frame.columns, frame.name, frame.notes)

        kills = tuple(k for k in self.oom_kills if (start_s is None or k >= start_s) and (end_s is None or k < end_s))
        return replace(self, cpu=cut(self.cpu), memory=None if self.memory is None else cut(self.memory),
                       oom_kills=kills)


def _guess(cols: list[str], exact: tuple[str, ...], part: str) -> str | None:
    low = {c.lower(): c for c in cols}
    for e in exact:
        if e in low:
            return low[e]
    for c in cols:
        if part in c.lower():
            return c
    return None


def _flatten(frame: Frame) -> tuple[FloatArray, FloatArray]:
    if len(frame) == 0 or frame.ndim == 0:
        return np.zeros(0), np.zeros(0)
    t = np.repeat(frame.seconds(), frame.ndim)
    v = frame.values.reshape(-1)
    ok = np.isfinite(v)
    t, v = t[ok], v[ok]
    order = np.argsort(t, kind="stable")
    return t[order], v[order]


@dataclass(frozen=True, eq=False)
class Schedule:
    """A CPU request that changes with the time of day (``period_s`` = 1 day) or of the week (7 days).

    ``values[k]`` holds from ``origin_s + k * block_s`` (mod the period) for ``block_s`` seconds: phase 0 is
    00:00 UTC (Monday 00:00 UTC for a weekly schedule). Applying it needs in-place pod resize (Kubernetes 1.33+)
    or another updater; the static ``cpu_request`` of the recommendation is the value for clusters without one.

    Examples
    --------
    >>> s = Schedule(np.array([0.5, 1.0]), block_s=43200.0, period_s=86400.0)
    >>> s.at(np.array([0.0, 50000.0, 86400.0])).tolist(), s.peak, s.mean
    ([0.5, 1.0, 0.5], 1.0, 0.75)
    >>> s.segments()
    [('00:00', '12:00', 0.5), ('12:00', '24:00', 1.0)]
    """

    values: FloatArray
    block_s: float
    period_s: float

    def __post_init__(self) -> None:
        n = self.period_s / self.block_s
        if abs(n - round(n)) > 1e-9 or round(n) != self.values.shape[0]:
            raise ConfigError(f"schedule: {self.values.shape[0]} blocks of {self.block_s:g} s do not fill a "
                              f"{self.period_s:g} s period")

    @property
    def origin_s(self) -> float:
        return MONDAY_S if self.period_s >= WEEK_S else 0.0

    def at(self, t_s: FloatArray) -> FloatArray:
        """The request in force at each Unix time."""
        k = (np.floor(np.mod(np.asarray(t_s, dtype=np.float64) - self.origin_s, self.period_s) / self.block_s)
             .astype(np.int64))
        out: FloatArray = self.values[np.clip(k, 0, self.values.shape[0] - 1)]
        return out

    @property
    def peak(self) -> float:
        return float(np.max(self.values))

    @property
    def mean(self) -> float:
        return float(np.mean(self.values))

    def segments(self) -> list[tuple[str, str, float]]:
        """Runs of equal values as ``(start, end, cores)`` with times like ``"07:00"`` or ``"Tue 07:00"``."""
        out: list[tuple[str, str, float]] = []
        start = 0
        for k in range(1, self.values.shape[0] + 1):
            if k == self.values.shape[0] or self.values[k] != self.values[start]:
                out.append((self._label(start * self.block_s), self._label(k * self.block_s, end=True),
                            float(self.values[start])))
                start = k
        return out

    def _label(self, offset_s: float, end: bool = False) -> str:
        if self.period_s >= WEEK_S:
            day, rest = divmod(offset_s, DAY_S)
            if end and rest == 0 and day > 0:
                day, rest = day - 1, DAY_S
            name = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")[int(day) % 7]
            return f"{name} {int(rest // 3600):02d}:{int(rest % 3600 // 60):02d}"
        return f"{int(offset_s // 3600):02d}:{int(offset_s % 3600 // 60):02d}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "period": "week" if self.period_s >= WEEK_S else "day",
            "timezone": "UTC",
            "block_s": self.block_s,
            "segments": [{"start": a, "end": b, "cpu": fmt_cpu(v), "cpu_cores": round(v, 4)}
                         for a, b, v in self.segments()],
        }


@dataclass(frozen=True, eq=False)
class Recommendation:
    """A strategy's answer for one workload: requests and limits, and the numbers that decided them.

    ``cpu_limit`` None means "no CPU limit" (no CFS throttling); ``memory_request`` None means memory could not
    be sized (no memory samples), which ``notes`` explain. ``cpu_schedule`` is set when the strategy recommends
    a time-varying CPU request; ``cpu_request`` is then the static value for clusters that cannot apply one.
    ``confidence`` is 0..1 (history length and sample count).
    """

    workload: str
    strategy: str
    cpu_request: float
    cpu_limit: float | None
    memory_request: float | None
    memory_limit: float | None
    cpu_schedule: Schedule | None = None
    workload_class: str = ""
    pattern: str = ""
    confidence: float = math.nan
    reason: str = ""
    evidence: Evidence = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    defined: ClassVar[bool] = True

    def cpu_request_at(self, t_s: FloatArray, use_schedule: bool = True) -> FloatArray:
        """The CPU request in force at each time (the schedule when there is one and ``use_schedule``)."""
        t = np.asarray(t_s, dtype=np.float64)
        if use_schedule and self.cpu_schedule is not None:
            return self.cpu_schedule.at(t)
        return np.full(t.shape, self.cpu_request)

    def explain(self) -> str:
        mem = fmt_memory(self.memory_request) if self.memory_request is not None else "undefined"
        sched = " (time-of-day schedule)" if self.cpu_schedule is not None else ""
        return f"cpu {fmt_cpu(self.cpu_request)}{sched}, memory {mem}: {self.reason}"


@dataclass(frozen=True, eq=False)
class Undefined:
    """No recommendation, and why (``reason`` completes "undefined, because ...")."""

    workload: str
    strategy: str
    reason: str
    evidence: Evidence = field(default_factory=dict)

    defined: ClassVar[bool] = False

    def explain(self) -> str:
        return f"undefined, because {self.reason}"


def check_usage(data: WorkloadUsage) -> str | None:
    """The shared data checks: the reason no strategy can size ``data``, or None when it can be sized."""
    cpu = data.cpu
    if len(cpu) == 0 or cpu.ndim == 0:
        return "there are no CPU usage samples (container_cpu_usage_seconds_total returned nothing)"
    v = cpu.values
    finite = np.isfinite(v)
    if not finite.any():
        return "every CPU usage sample is missing"
    if np.any(v[finite] < 0):
        return f"{int(np.sum(v[finite] < 0))} CPU usage samples are negative: not a usage series"
    if not np.any(v[finite] > 0):
        return "CPU usage is zero in every sample: an idle container (or a broken metric) cannot be sized from usage"
    if data.memory is not None and len(data.memory):
        m = data.memory.values
        mf = np.isfinite(m)
        if mf.any() and np.any(m[mf] < 0):
            return f"{int(np.sum(m[mf] < 0))} memory samples are negative: not a usage series"
    return None


class Recommender(ABC):
    """Base class of every rightsizing strategy.

    Subclasses set ``Settings`` (a pydantic model) and implement ``_recommend``. Construct with keyword
    arguments (validated into ``Settings``) or a ready ``settings`` object.
    """

    Settings: ClassVar[type[BaseModel]]
    settings: BaseModel

    def __init__(self, settings: BaseModel | None = None, **params: Any) -> None:
        if settings is not None and params:
            raise ConfigError(f"{self.name}: give settings or keyword parameters, not both")
        if settings is not None and not isinstance(settings, self.Settings):
            raise ConfigError(f"{self.name}: settings must be {self.Settings.__name__}")
        try:
            self.settings = settings if settings is not None else self.Settings(**params)
        except ValidationError as exc:
            err = exc.errors()[0]
            loc = ".".join(str(p) for p in err.get("loc", ())) or "settings"
            raise ConfigError(f"{self.name}: {loc}: {err.get('msg', 'invalid value')}") from None

    @property
    def name(self) -> str:
        return str(getattr(type(self), "_registry_name", type(self).__name__))

    def recommend(self, data: WorkloadUsage) -> Recommendation | Undefined:
        """A recommendation for ``data``, or :class:`Undefined` with the reason (never raises on bad data)."""
        problem = check_usage(data)
        if problem is not None:
            return Undefined(data.name, self.name, problem)
        return self._recommend(data)

    @abstractmethod
    def _recommend(self, data: WorkloadUsage) -> Recommendation | Undefined:
        """The strategy itself, on data that passed :func:`check_usage`."""

    def spec(self) -> dict[str, Any]:
        """``{"type": name, "params": {...}}``: what :func:`build_recommender` rebuilds this from."""
        return {"type": self.name, "params": self.settings.model_dump()}


RECOMMENDERS: Registry[Recommender] = Registry("rightsizing strategy")


def build_recommender(spec: str | Mapping[str, Any]) -> Recommender:
    """A strategy from its name (``"vpa"``, ``"krr-simple"``, ``"opsmind"``) or ``{"type", "params"}``."""
    import opsmind.rightsize  # noqa: F401  (registers every strategy)

    return RECOMMENDERS.build(spec)


def percentile_linear(x: npt.ArrayLike, q: float) -> float:
    """``numpy.percentile`` (linear interpolation) of the finite values, NaN when there are none."""
    arr = np.asarray(x, dtype=np.float64)
    arr = arr[np.isfinite(arr)]
    return float(np.percentile(arr, q)) if arr.size else math.nan
