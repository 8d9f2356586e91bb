"""The tables, as typed SQLAlchemy 2 ORM classes. The Alembic migrations in ``migrations/`` build the same schema
(a test compares them).

Every record belongs to a tenant: each table has a ``tenant_id`` (deleting a tenant deletes its records), except
``samples`` and ``incident_alerts``, which belong to a tenant through their series and their incident.
Natural keys make replays idempotent: a sample is ``(series_id, ts)``, an anomaly ``(series_id, ts)``, a forecast
``(series_id, method, issued_at)``, a recommendation ``(tenant_id, kind, target, issued_at)``, an incident
``(tenant_id, key)`` and its alerts ``(incident_id, fingerprint)``, a feedback ``(series_id, ts, author)``, a model
state ``(series_id, role, version)``. All times are ``BIGINT`` milliseconds (see :mod:`opsmind.store.columns`).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Double,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from opsmind.store.columns import BigId, JSONType, Millis

__all__ = [
    "ANOMALY_SEVERITIES",
    "FEEDBACK_VERDICTS",
    "INCIDENT_STATUSES",
    "RECOMMENDATION_STATUSES",
    "SCOPES",
    "Anomaly",
    "ApiToken",
    "AuditEntry",
    "Base",
    "Feedback",
    "ForecastRow",
    "IncidentAlertRow",
    "IncidentRow",
    "ModelState",
    "Recommendation",
    "Sample",
    "Series",
    "Tenant",
]

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

SCOPES = ("read", "write", "admin")
FEEDBACK_VERDICTS = ("true_positive", "false_positive", "missed")
INCIDENT_STATUSES = ("open", "resolved", "closed")
RECOMMENDATION_STATUSES = ("open", "accepted", "applied", "dismissed")
ANOMALY_SEVERITIES = ("critical", "high", "medium", "low")
STATE_FORMATS = ("pickle", "json")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def _tenant_fk() -> Mapped[str]:
    return mapped_column(String(64), ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False)


def _series_fk(nullable: bool = False) -> Mapped[Any]:
    return mapped_column(BigId, ForeignKey("series.id", ondelete="SET NULL" if nullable else "CASCADE"),
                         nullable=nullable)


class Tenant(Base):
    """A tenant: the owner of every other record. ``id`` is a slug (``acme``, ``default``)."""

    __tablename__ = "tenants"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[float] = mapped_column(Millis)


class ApiToken(Base):
    """An API token: only the SHA-256 of the secret is kept, with a short prefix to recognise it by."""

    __tablename__ = "api_tokens"
    __table_args__ = (Index(None, "tenant_id"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = _tenant_fk()
    name: Mapped[str] = mapped_column(String(200))
    prefix: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    scopes: Mapped[str] = mapped_column(String(32))  # comma-separated, sorted: "admin,read,write"
    created_at: Mapped[float] = mapped_column(Millis)
    expires_at: Mapped[float | None] = mapped_column(Millis)
    revoked_at: Mapped[float | None] = mapped_column(Millis)
    last_used_at: Mapped[float | None] = mapped_column(Millis)


class Series(Base):
    """A time series: metric name, labels and the service it belongs to. ``key`` is the SHA-256 of the
    canonical ``name{label="value",...}`` (labels sorted), unique per tenant."""

    __tablename__ = "series"
    __table_args__ = (
        UniqueConstraint("tenant_id", "key"),
        Index(None, "tenant_id", "name"),
        Index(None, "tenant_id", "service"),
        {"sqlite_autoincrement": True},  # never reuse an id: caches and foreign keys rely on it
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = _tenant_fk()
    name: Mapped[str] = mapped_column(String(255))
    labels: Mapped[dict[str, str]] = mapped_column(JSONType)
    key: Mapped[str] = mapped_column(String(64))
    service: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[float] = mapped_column(Millis)
    stale_since: Mapped[float | None] = mapped_column(Millis)


class Sample(Base):
    """One sample: ``ts`` in integer milliseconds (the Prometheus unit), ``value`` (NULL stands for NaN on SQLite).
    The primary key ``(series_id, ts)`` makes a replayed sample a no-op.

    ``series_id`` has no foreign key on purpose: PostgreSQL checks a foreign key by locking the referenced series
    row for every inserted sample, which halved the ingest rate (measured). The store deletes a series' samples
    itself when it deletes the series (or its tenant), and series ids are never reused."""

    __tablename__ = "samples"
    __table_args__ = (
        PrimaryKeyConstraint("series_id", "ts"),
        {"sqlite_with_rowid": False},
    )
    series_id: Mapped[int] = mapped_column(BigId)
    ts: Mapped[int] = mapped_column(BigInteger)
    value: Mapped[float | None] = mapped_column(Double)


class Anomaly(Base):
    """A detector's decision on one observation of one series (``suppressed`` ones too, when recorded)."""

    __tablename__ = "anomalies"
    __table_args__ = (
        UniqueConstraint("series_id", "ts"),
        Index(None, "tenant_id", "ts"),
        CheckConstraint("probability >= 0 AND probability <= 1", name="probability"),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = _tenant_fk()
    series_id: Mapped[int] = _series_fk()
    ts: Mapped[float] = mapped_column(Millis)
    probability: Mapped[float] = mapped_column(Double)
    score: Mapped[float | None] = mapped_column(Double)
    severity: Mapped[str | None] = mapped_column(String(16))
    detector: Mapped[str | None] = mapped_column(String(200))
    suppressed: Mapped[bool] = mapped_column(Boolean, default=False)
    evidence: Mapped[Any] = mapped_column(JSONType)
    created_at: Mapped[float] = mapped_column(Millis)


class ForecastRow(Base):
    """A forecast issued at ``issued_at`` (the time of the last observation it used): the future grid, the mean
    and the intervals per level live in ``payload``; ``start``/``end`` bound the grid for queries."""

    __tablename__ = "forecasts"
    __table_args__ = (
        UniqueConstraint("series_id", "method", "issued_at"),
        Index(None, "tenant_id", "issued_at"),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = _tenant_fk()
    series_id: Mapped[int] = _series_fk()
    issued_at: Mapped[float] = mapped_column(Millis)
    method: Mapped[str] = mapped_column(String(200))
    horizon: Mapped[int] = mapped_column(Integer)
    start: Mapped[float] = mapped_column(Millis)
    end: Mapped[float] = mapped_column(Millis)
    payload: Mapped[Any] = mapped_column(JSONType)  # {"timestamps": [ms], "mean": [...], "intervals": {...}}
    notes: Mapped[Any] = mapped_column(JSONType)
    created_at: Mapped[float] = mapped_column(Millis)


class Recommendation(Base):
    """A capacity, scaling or rightsizing recommendation for a ``target`` (a workload, a service); the analyzer's
    own result is kept whole in ``payload`` and its reasoning in ``evidence``."""

    __tablename__ = "recommendations"
    __table_args__ = (
        UniqueConstraint("tenant_id", "kind", "target", "issued_at"),
        Index(None, "tenant_id", "issued_at"),
        CheckConstraint(_in("status", RECOMMENDATION_STATUSES), name="status"),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = _tenant_fk()
    kind: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(255))
    service: Mapped[str | None] = mapped_column(String(200))
    series_id: Mapped[int | None] = _series_fk(nullable=True)
    issued_at: Mapped[float] = mapped_column(Millis)
    summary: Mapped[str] = mapped_column(Text)
    savings_per_month: Mapped[float | None] = mapped_column(Double)
    status: Mapped[str] = mapped_column(String(16))
    payload: Mapped[Any] = mapped_column(JSONType)
    evidence: Mapped[Any] = mapped_column(JSONType)
    created_at: Mapped[float] = mapped_column(Millis)
    updated_at: Mapped[float] = mapped_column(Millis)


class IncidentRow(Base):
    """An incident (:class:`opsmind.incidents.correlate.Incident`); ``key`` is the correlator's id."""

    __tablename__ = "incidents"
    __table_args__ = (
        UniqueConstraint("tenant_id", "key"),
        Index(None, "tenant_id", "started_at"),
        Index(None, "tenant_id", "status"),
        CheckConstraint(_in("status", INCIDENT_STATUSES), name="status"),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = _tenant_fk()
    key: Mapped[str] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))
    priority: Mapped[str] = mapped_column(String(4))
    score: Mapped[float] = mapped_column(Double)
    severity: Mapped[int] = mapped_column(Integer)
    blast_radius: Mapped[float] = mapped_column(Double)
    slo_impact: Mapped[float] = mapped_column(Double)
    started_at: Mapped[float] = mapped_column(Millis)
    last_activity: Mapped[float] = mapped_column(Millis)
    resolved_at: Mapped[float | None] = mapped_column(Millis)
    services: Mapped[Any] = mapped_column(JSONType)
    recurrence_of: Mapped[str | None] = mapped_column(String(64))
    root_cause: Mapped[str | None] = mapped_column(String(255))
    rca: Mapped[Any] = mapped_column(JSONType, nullable=True)
    evidence: Mapped[Any] = mapped_column(JSONType)
    created_at: Mapped[float] = mapped_column(Millis)
    updated_at: Mapped[float] = mapped_column(Millis)
    alerts: Mapped[list[IncidentAlertRow]] = relationship(
        back_populates="incident", cascade="all, delete-orphan", passive_deletes=True,
        order_by="IncidentAlertRow.id")


class IncidentAlertRow(Base):
    """One distinct alert (one Alertmanager fingerprint) of an incident."""

    __tablename__ = "incident_alerts"
    __table_args__ = (
        UniqueConstraint("incident_id", "fingerprint"),
        Index(None, "fingerprint"),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    incident_id: Mapped[int] = mapped_column(BigId, ForeignKey("incidents.id", ondelete="CASCADE"))
    fingerprint: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(255))
    service: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16))
    labels: Mapped[Any] = mapped_column(JSONType)
    annotations: Mapped[Any] = mapped_column(JSONType)
    generator_url: Mapped[str] = mapped_column(Text)
    starts_at: Mapped[float] = mapped_column(Millis)
    ends_at: Mapped[float | None] = mapped_column(Millis)
    first_seen: Mapped[float] = mapped_column(Millis)
    last_seen: Mapped[float] = mapped_column(Millis)
    repeats: Mapped[int] = mapped_column(Integer)
    incident: Mapped[IncidentRow] = relationship(back_populates="alerts")


class Feedback(Base):
    """A person's verdict on one observation: a true or false positive on an anomaly, or a missed anomaly."""

    __tablename__ = "feedback"
    __table_args__ = (
        UniqueConstraint("series_id", "ts", "author"),
        Index(None, "tenant_id", "created_at"),
        CheckConstraint(_in("verdict", FEEDBACK_VERDICTS), name="verdict"),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = _tenant_fk()
    series_id: Mapped[int] = _series_fk()
    anomaly_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("anomalies.id", ondelete="SET NULL"))
    ts: Mapped[float] = mapped_column(Millis)
    verdict: Mapped[str] = mapped_column(String(16))
    author: Mapped[str] = mapped_column(String(200))
    comment: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[float] = mapped_column(Millis)


class ModelState(Base):
    """One version of a series' learned model (a detector, a forecaster, a calibration): what it is, when and on
    which range it was trained, how well it backtested, and its state (pickle or JSON bytes)."""

    __tablename__ = "model_states"
    __table_args__ = (
        UniqueConstraint("series_id", "role", "version"),
        Index(None, "tenant_id", "trained_at"),
        CheckConstraint(_in("state_format", STATE_FORMATS), name="state_format"),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = _tenant_fk()
    series_id: Mapped[int] = _series_fk()
    role: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(200))
    spec: Mapped[Any] = mapped_column(JSONType)
    trained_at: Mapped[float] = mapped_column(Millis)
    train_start: Mapped[float | None] = mapped_column(Millis)
    train_end: Mapped[float | None] = mapped_column(Millis)
    n_train: Mapped[int | None] = mapped_column(Integer)
    backtest_error: Mapped[float | None] = mapped_column(Double)
    backtest_metric: Mapped[str | None] = mapped_column(String(64))
    state_format: Mapped[str] = mapped_column(String(8))
    state: Mapped[bytes] = mapped_column(LargeBinary)
    state_sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[float] = mapped_column(Millis)


class AuditEntry(Base):
    """Who did what, when, why, and with what result."""

    __tablename__ = "audit_log"
    __table_args__ = (Index(None, "tenant_id", "at"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = _tenant_fk()
    at: Mapped[float] = mapped_column(Millis)
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(100))
    target: Mapped[str | None] = mapped_column(String(255))
    reason: Mapped[str | None] = mapped_column(Text)
    result: Mapped[str] = mapped_column(String(32))
    details: Mapped[Any] = mapped_column(JSONType)
