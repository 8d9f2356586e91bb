"""The values root-cause analysis works on and returns: a case, an onset, ranked causes with their evidence.

A :class:`Case` bundles what is known about one incident: per-service metric frames, optional frontend SLIs, a
call graph, per-edge call latencies, spans and log lines. :func:`opsmind.rca.analyze` turns it into an
:class:`RcaResult`: the estimated :class:`Onset` and a ranking of :class:`Cause` objects, each listing the
:class:`Indicator` values (metric, score, :class:`Evidence`) that put it there.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

import numpy as np
import numpy.typing as npt
import pandas as pd

from opsmind.core import ConfigError, Frame

__all__ = [
    "Case",
    "Cause",
    "EdgeFrames",
    "Evidence",
    "Indicator",
    "LogLines",
    "Onset",
    "RcaResult",
    "Source",
    "TimeLike",
    "to_epoch_s",
]

TimeLike = float | int | str | pd.Timestamp | np.datetime64
Source = Literal["metrics", "edges", "traces", "logs"]
EdgeFrames = Mapping[tuple[str, str], Frame]


def to_epoch_s(value: TimeLike | object) -> float:
    """Unix seconds of a time given as seconds, a datetime, ``numpy.datetime64`` or an ISO 8601 string (naive = UTC).

    >>> to_epoch_s("2024-01-01T00:01:00Z"), to_epoch_s(1704067260), to_epoch_s(np.datetime64("2024-01-01T00:01"))
    (1704067260.0, 1704067260.0, 1704067260.0)
    """
    if isinstance(value, bool):
        raise ConfigError(f"cannot read {value!r} as a time")
    if isinstance(value, int | float | np.integer | np.floating):
        return float(value)
    if isinstance(value, str):
        text = value.strip()
        try:
            return float(text)
        except ValueError:
            pass
    try:
        ts = pd.Timestamp(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ConfigError(f"cannot read {value!r} as a time (examples: 1704067200, '2024-01-01T00:00:00Z')") from None
    if pd.isna(ts):
        raise ConfigError(f"cannot read {value!r} as a time")
    if ts.tzinfo is None:
        ts = ts.tz_localize("UTC")
    return float(ts.value) / 1e9


def _iso(t_s: float) -> str:
    return pd.Timestamp(round(t_s * 1e9), unit="ns", tz="UTC").strftime("%Y-%m-%d %H:%M:%S")


@dataclass(frozen=True)
class Evidence:
    """Why an indicator scored what it did: the normal level and spread, what was seen, where and when."""

    source: Source
    kind: str
    normal: float
    spread: float
    observed: float
    at_s: float
    detail: str = ""

    def __str__(self) -> str:
        when = _iso(self.at_s) if np.isfinite(self.at_s) else "-"
        text = f"{_num(self.normal)} -> {_num(self.observed)} (spread {_num(self.spread)}) at {when}"
        return f"{text}; {self.detail}" if self.detail else text

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "kind": self.kind, "normal": _finite(self.normal),
                "spread": _finite(self.spread), "observed": _finite(self.observed),
                "at": _iso(self.at_s) if np.isfinite(self.at_s) else None, "detail": self.detail}


def _finite(v: float) -> float | None:
    return float(v) if np.isfinite(v) else None


def _num(v: float) -> str:
    if not np.isfinite(v):
        return "nan"
    return f"{v:.4g}"


class Indicator(NamedTuple):
    """One root-cause indicator of a service: a metric (or template, or trace signal), its score, its evidence."""

    metric: str
    score: float
    evidence: Evidence


@dataclass(frozen=True)
class Cause:
    """A candidate root-cause service, its score and its indicators, strongest first."""

    service: str
    score: float
    indicators: tuple[Indicator, ...] = ()

    @property
    def top_indicator(self) -> Indicator | None:
        return self.indicators[0] if self.indicators else None

    def to_dict(self, max_indicators: int = 5) -> dict[str, Any]:
        return {"service": self.service, "score": float(self.score),
                "indicators": [{"metric": i.metric, "score": float(i.score), "evidence": i.evidence.to_dict()}
                               for i in self.indicators[:max_indicators]]}


@dataclass(frozen=True)
class Onset:
    """When the incident started: the last normal sample before a sustained change of the SLIs.

    ``found`` is false when no SLI changed near the time asked about; ``time_s`` is then that time.
    """

    time_s: float
    found: bool
    signal: str = ""
    score: float = 0.0
    detail: str = ""

    def __str__(self) -> str:
        how = f"change of {self.signal} (robust z {self.score:.3g})" if self.found else "no SLI change found"
        return f"{_iso(self.time_s)} UTC: {how}" + (f"; {self.detail}" if self.detail else "")


@dataclass(frozen=True)
class RcaResult:
    """The onset, the causes ranked by score (highest first), and notes on the data (gaps, repairs, fallbacks)."""

    onset: Onset
    ranking: tuple[Cause, ...]
    notes: tuple[str, ...] = ()

    def services(self) -> list[str]:
        return [c.service for c in self.ranking]

    def rank_of(self, service: str) -> int | None:
        """1-based rank of ``service``, or ``None`` if it is not ranked."""
        for i, c in enumerate(self.ranking):
            if c.service == service:
                return i + 1
        return None

    def to_dict(self, top: int | None = None) -> dict[str, Any]:
        return {"onset": {"time": _iso(self.onset.time_s), "found": self.onset.found, "signal": self.onset.signal,
                          "score": float(self.onset.score), "detail": self.onset.detail},
                "ranking": [c.to_dict() for c in self.ranking[:top]],
                "notes": list(self.notes)}


@dataclass(frozen=True)
class LogLines:
    """Log lines reduced to what template-frequency analysis needs: time, service, template key and level.

    ``template`` is a stable key of the statement that wrote the line (see :func:`opsmind.rca.logs.template_of`).
    """

    timestamps: npt.NDArray[np.datetime64]
    services: npt.NDArray[np.str_]
    templates: npt.NDArray[np.str_]
    levels: npt.NDArray[np.str_]

    def __post_init__(self) -> None:
        n = len(self.timestamps)
        if not (len(self.services) == len(self.templates) == len(self.levels) == n):
            raise ConfigError("LogLines: timestamps, services, templates and levels must have the same length")

    def __len__(self) -> int:
        return len(self.timestamps)

    def seconds(self) -> npt.NDArray[np.float64]:
        out: npt.NDArray[np.float64] = self.timestamps.astype("datetime64[ns]").astype(np.int64) / 1e9
        return out

    @classmethod
    def from_records(cls, records: Iterable[tuple[TimeLike, str, str, str]]) -> LogLines:
        """From ``(time, service, template, level)`` tuples."""
        rows = list(records)
        ts = np.array([round(to_epoch_s(r[0]) * 1e9) for r in rows], dtype=np.int64).astype("datetime64[ns]")
        return cls(ts, np.array([r[1] for r in rows], dtype=str), np.array([r[2] for r in rows], dtype=str),
                   np.array([r[3] for r in rows], dtype=str))

    @classmethod
    def concat(cls, parts: Sequence[LogLines]) -> LogLines:
        if not parts:
            return cls.empty()
        return cls(np.concatenate([p.timestamps for p in parts]), np.concatenate([p.services for p in parts]),
                   np.concatenate([p.templates for p in parts]), np.concatenate([p.levels for p in parts]))

    @classmethod
    def empty(cls) -> LogLines:
        return cls(np.array([], dtype="datetime64[ns]"), np.array([], dtype=str), np.array([], dtype=str),
                   np.array([], dtype=str))


@dataclass(frozen=True)
class Case:
    """Everything known about one incident, as loaded by a source or a benchmark harness.

    Parameters
    ----------
    metrics
        One frame per service (columns are that service's metrics; node-level metrics start with ``Node``).
    slis
        Frontend service-level indicators (success rate, latency quantiles), used to find the onset.
    calls
        Call-graph edges ``(caller, callee)``; from a dependency file or derived from traces.
    edges
        Per-edge call latency frames keyed by ``(caller, callee)``: a column ``caller_latency`` (as the caller
        measured it) and optionally ``callee_latency`` (as the callee measured it).
    spans, baseline_spans
        Spans around the incident, and optionally spans of a known fault-free period.
    logs, baseline_logs
        Log lines around the incident, and optionally of a known fault-free period.
    """

    metrics: Mapping[str, Frame]
    slis: Frame | None = None
    calls: tuple[tuple[str, str], ...] = ()
    edges: EdgeFrames = field(default_factory=dict)
    spans: Sequence[Any] | None = None
    baseline_spans: Sequence[Any] | None = None
    logs: LogLines | None = None
    baseline_logs: LogLines | None = None
    notes: tuple[str, ...] = ()
