"""What the repositories return: frozen pydantic models (times in Unix seconds), detached from the database, ready
for an API response (``record.model_dump(mode="json")``). Each carries its tenant.
"""

from __future__ import annotations

import json
import pickle
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict

from opsmind.core import FloatArray
from opsmind.core.errors import DataError

__all__ = [
    "AnomalyRecord",
    "AuditRecord",
    "FeedbackRecord",
    "ForecastRecord",
    "IncidentAlertRecord",
    "IncidentRecord",
    "IngestResult",
    "ModelStateRecord",
    "RecommendationRecord",
    "Samples",
    "Scope",
    "SeriesRecord",
    "TenantRecord",
    "TokenRecord",
]

Scope = Literal["read", "write", "admin"]
_IMPLIED: dict[str, frozenset[str]] = {
    "read": frozenset({"read"}),
    "write": frozenset({"read", "write"}),
    "admin": frozenset({"read", "write", "admin"}),
}


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, from_attributes=True)


class TenantRecord(_Record):
    id: str
    name: str
    created_at: float


class TokenRecord(_Record):
    """An API token's metadata (the secret is shown once, by :meth:`TokenRepository.create`, and never stored)."""

    id: int
    tenant: str
    name: str
    prefix: str
    scopes: frozenset[Scope]
    created_at: float
    expires_at: float | None
    revoked_at: float | None
    last_used_at: float | None

    def allows(self, scope: Scope) -> bool:
        """Whether the token may act with ``scope``: admin implies write, write implies read."""
        return any(scope in _IMPLIED[s] for s in self.scopes)


class SeriesRecord(_Record):
    id: int
    tenant: str
    name: str
    labels: dict[str, str]
    service: str | None
    created_at: float
    stale_since: float | None

    @property
    def selector(self) -> str:
        """The series as PromQL would write it: ``name{a="b",...}``."""
        inner = ",".join(f'{k}="{v}"' for k, v in sorted(self.labels.items()))
        return f"{self.name}{{{inner}}}"


@dataclass(frozen=True)
class Samples:
    """Samples of one series in time order: ``ts`` in Unix seconds, ``values`` (NaN where none was stored)."""

    series_id: int
    ts: FloatArray
    values: FloatArray

    def __len__(self) -> int:
        return int(self.ts.shape[0])


@dataclass(frozen=True)
class IngestResult:
    """What an ingest call stored: ``inserted`` new samples out of ``samples`` (the rest were already there)."""

    series: int
    samples: int
    inserted: int

    @property
    def duplicates(self) -> int:
        return self.samples - self.inserted


class AnomalyRecord(_Record):
    id: int
    tenant: str
    series_id: int
    ts: float
    probability: float
    score: float | None
    severity: str | None
    detector: str | None
    suppressed: bool
    evidence: Any
    created_at: float


class ForecastRecord(_Record):
    """A stored forecast. ``timestamps`` are Unix seconds; ``intervals`` maps a level to ``(lower, upper)``;
    values that were NaN come back as NaN."""

    id: int
    tenant: str
    series_id: int
    issued_at: float
    method: str
    horizon: int
    timestamps: list[float]
    mean: list[float]
    intervals: dict[int, tuple[list[float], list[float]]]
    notes: list[str]
    created_at: float

    def to_forecast(self) -> Any:
        """The :class:`opsmind.forecast.base.Forecast` this record was made from."""
        from opsmind.forecast.base import Forecast

        ts = (np.asarray(self.timestamps) * 1e3).round().astype(np.int64).astype("datetime64[ms]")
        return Forecast(
            timestamps=ts.astype("datetime64[ns]"),
            mean=np.asarray(self.mean, dtype=np.float64),
            intervals={lv: (np.asarray(lo, dtype=np.float64), np.asarray(hi, dtype=np.float64))
                       for lv, (lo, hi) in self.intervals.items()},
            method=self.method,
            notes=tuple(self.notes),
        )


class RecommendationRecord(_Record):
    id: int
    tenant: str
    kind: str
    target: str
    service: str | None
    series_id: int | None
    issued_at: float
    summary: str
    savings_per_month: float | None
    status: str
    payload: Any
    evidence: Any
    created_at: float
    updated_at: float


class IncidentAlertRecord(_Record):
    fingerprint: str
    name: str
    service: str
    status: Literal["firing", "resolved"]
    labels: dict[str, str]
    annotations: dict[str, str]
    generator_url: str
    starts_at: float
    ends_at: float | None
    first_seen: float
    last_seen: float
    repeats: int


class IncidentRecord(_Record):
    """A stored incident; ``key`` is the correlator's id (``inc-...``), the one the API shows."""

    id: int
    tenant: str
    key: str
    title: str
    status: Literal["open", "resolved", "closed"]
    priority: Literal["P1", "P2", "P3", "P4"]
    score: float
    severity: int
    blast_radius: float
    slo_impact: float
    started_at: float
    last_activity: float
    resolved_at: float | None
    services: list[str]
    recurrence_of: str | None
    root_cause: str | None
    rca: Any
    evidence: list[str]
    alerts: list[IncidentAlertRecord]
    created_at: float
    updated_at: float

    def to_incident(self) -> Any:
        """An :class:`opsmind.incidents.correlate.Incident` (``rca`` in its stored JSON form), e.g. to give a
        restarted :class:`~opsmind.incidents.correlate.IncidentCorrelator` its history."""
        from opsmind.core.alerts import Alert
        from opsmind.incidents.correlate import Incident, TrackedAlert

        alerts = {
            a.fingerprint: TrackedAlert(
                alert=Alert(labels=a.labels, starts_at=a.starts_at, ends_at=a.ends_at, annotations=a.annotations,
                            generator_url=a.generator_url, status=a.status),
                service=a.service, first_seen=a.first_seen, last_seen=a.last_seen, repeats=a.repeats)
            for a in self.alerts
        }
        return Incident(
            id=self.key, started_at=self.started_at, last_activity=self.last_activity, alerts=alerts,
            services=set(self.services), status=self.status, resolved_at=self.resolved_at,
            priority=self.priority, score=self.score, severity=self.severity, blast_radius=self.blast_radius,
            slo_impact=self.slo_impact, recurrence_of=self.recurrence_of, root_cause=self.root_cause,
            rca=self.rca, evidence=list(self.evidence),
        )


class FeedbackRecord(_Record):
    id: int
    tenant: str
    series_id: int
    anomaly_id: int | None
    ts: float
    verdict: Literal["true_positive", "false_positive", "missed"]
    author: str
    comment: str | None
    created_at: float


class ModelStateRecord(_Record):
    """One version of a model. ``state`` holds the bytes when the record was read with them (``latest``/``get``);
    :meth:`load` gives the object back."""

    id: int
    tenant: str
    series_id: int
    role: str
    version: int
    kind: str
    spec: Any
    trained_at: float
    train_start: float | None
    train_end: float | None
    n_train: int | None
    backtest_error: float | None
    backtest_metric: str | None
    state_format: Literal["pickle", "json"]
    state_sha256: str
    created_at: float
    state: bytes | None = None

    def load(self) -> Any:
        """The model state object. Pickles run code when loaded: only load states this deployment wrote."""
        if self.state is None:
            raise DataError(f"model state {self.role} v{self.version} of series {self.series_id} was read "
                            f"without its state; use latest() or get()")
        if self.state_format == "json":
            return json.loads(self.state.decode("utf-8"))
        return pickle.loads(self.state)  # the store only holds states opsmind pickled


class AuditRecord(_Record):
    id: int
    tenant: str
    at: float
    actor: str
    action: str
    target: str | None
    reason: str | None
    result: str
    details: Any
