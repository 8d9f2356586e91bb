"""Retention: delete rows older than N days, per table, in batches (each batch its own short transaction, so a
large clean-up never holds the database for long).

What "older" means per table: samples and anomalies by their time, forecasts and recommendations by when they
were issued, feedback by when it was given, audit entries by when they happened; incidents by their last
activity, and only once they are no longer open; model states by when they were trained, always keeping the
latest version of each series and role.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import ColumnElement, and_, delete, func, select
from sqlalchemy.orm import aliased

from opsmind.store._base import Repository, rowcount
from opsmind.store.columns import check_int, check_time, to_ms
from opsmind.store.models import (
    Anomaly,
    AuditEntry,
    Feedback,
    ForecastRow,
    IncidentRow,
    ModelState,
    Recommendation,
    Sample,
    Series,
    Tenant,
)

__all__ = ["RetentionPolicy", "RetentionRepository"]

_DAY_S = 86_400.0


def _days(description: str) -> Any:
    return Field(None, gt=0, description=f"Delete {description} older than this many days (empty: keep forever).")


class RetentionPolicy(BaseModel):
    """Days to keep, per table; ``None`` keeps a table's rows forever."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    samples: float | None = _days("samples")
    anomalies: float | None = _days("anomalies")
    forecasts: float | None = _days("forecasts")
    recommendations: float | None = _days("recommendations")
    incidents: float | None = _days("closed and resolved incidents")
    feedback: float | None = _days("feedback")
    model_states: float | None = _days("superseded model-state versions")
    audit_log: float | None = _days("audit-log entries")


class RetentionRepository(Repository):
    def apply(self, tenant: str, policy: RetentionPolicy, *, now: float | None = None,
              batch_size: int = 10_000) -> dict[str, int]:
        """Delete the tenant's expired rows; returns how many were deleted per table."""
        at = self._now() if now is None else check_time(now, "now")
        batch = check_int(batch_size, "batch_size", minimum=1)
        with self._ctx.read() as s:
            t = self._tenant(s, tenant)
        out: dict[str, int] = {}
        for table in RetentionPolicy.model_fields:
            days = getattr(policy, table)
            if days is None:
                continue
            cutoff = at - days * _DAY_S
            if table == "samples":
                out[table] = self._samples(t, cutoff, batch)
            else:
                out[table] = self._by_id(table, t, cutoff, batch)
        return out

    def apply_all(self, policy: RetentionPolicy, *, now: float | None = None,
                  batch_size: int = 10_000) -> dict[str, int]:
        """:meth:`apply` for every tenant; the counts are summed."""
        with self._ctx.read() as s:
            tenants = list(s.scalars(select(Tenant.id).order_by(Tenant.id)))
        total: dict[str, int] = {}
        for t in tenants:
            for table, n in self.apply(t, policy, now=now, batch_size=batch_size).items():
                total[table] = total.get(table, 0) + n
        return total

    def _samples(self, tenant: str, cutoff: float, batch: int) -> int:
        cut = to_ms(cutoff)
        with self._ctx.read() as s:
            series = list(s.scalars(select(Series.id).where(Series.tenant_id == tenant).order_by(Series.id)))
        deleted = 0
        for sid in series:
            while True:
                with self._ctx.write() as s:
                    bound = s.scalar(select(Sample.ts).where(Sample.series_id == sid, Sample.ts < cut)
                                     .order_by(Sample.ts).offset(batch - 1).limit(1))
                    upto = Sample.ts < cut if bound is None else Sample.ts <= bound  # at most `batch` rows
                    n = rowcount(s.execute(delete(Sample).where(Sample.series_id == sid, upto)))
                deleted += n
                if bound is None or n == 0:
                    break
        return deleted

    def _by_id(self, table: str, tenant: str, cutoff: float, batch: int) -> int:
        model: Any = {"anomalies": Anomaly, "forecasts": ForecastRow, "recommendations": Recommendation,
                      "incidents": IncidentRow, "feedback": Feedback, "model_states": ModelState,
                      "audit_log": AuditEntry}[table]
        deleted = 0
        while True:
            with self._ctx.write() as s:
                cond = self._expired(table, model, tenant, cutoff)
                ids = list(s.scalars(select(model.id).where(cond).order_by(model.id).limit(batch)))
                if ids:
                    deleted += rowcount(s.execute(delete(model).where(model.id.in_(ids))))
            if len(ids) < batch:
                return deleted

    @staticmethod
    def _expired(table: str, model: Any, tenant: str, cutoff: float) -> ColumnElement[bool]:
        mine = model.tenant_id == tenant
        if table == "anomalies":
            return and_(mine, Anomaly.ts < cutoff)
        if table in ("forecasts", "recommendations"):
            return and_(mine, model.issued_at < cutoff)
        if table == "feedback":
            return and_(mine, Feedback.created_at < cutoff)
        if table == "audit_log":
            return and_(mine, AuditEntry.at < cutoff)
        if table == "incidents":
            return and_(mine, IncidentRow.last_activity < cutoff, IncidentRow.status != "open")
        newer = aliased(ModelState)
        superseded = (select(func.max(newer.version)).where(newer.series_id == ModelState.series_id,
                                                            newer.role == ModelState.role)
                      .scalar_subquery())
        return and_(mine, ModelState.trained_at < cutoff, ModelState.version < superseded)

