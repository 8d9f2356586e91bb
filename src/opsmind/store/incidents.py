"""Incidents and their alerts.

:meth:`IncidentRepository.save` stores an :class:`opsmind.incidents.correlate.Incident` as it is now: the incident
row is an upsert on ``(tenant, key)`` (``key`` is the correlator's id) and its alerts mirror ``incident.alerts``,
one row per fingerprint (unique per incident): saving the same incident again, as a restarted engine replaying
its alerts does, adds no row. ``load`` rebuilds ``Incident`` objects for a restarted correlator's history.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import ColumnElement, cast, delete, exists, func, literal, select
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Session, selectinload

from opsmind.core.errors import DataError
from opsmind.store._base import Repository, rowcount, to_record
from opsmind.store.columns import check_choice, check_int, check_text, ms_time, to_jsonable
from opsmind.store.errors import NotFoundError
from opsmind.store.models import INCIDENT_STATUSES, IncidentAlertRow, IncidentRow
from opsmind.store.records import IncidentAlertRecord, IncidentRecord

__all__ = ["IncidentRepository"]

_PRIORITIES = ("P1", "P2", "P3", "P4")


def _incident_record(row: IncidentRow) -> IncidentRecord:
    alerts = [to_record(IncidentAlertRecord, a) for a in row.alerts]
    return to_record(IncidentRecord, row, alerts=alerts, services=list(row.services), evidence=list(row.evidence))


def _fields(inc: Any) -> dict[str, Any]:
    """The incident's columns, checked (``DataError`` naming the field for a wrong value)."""
    try:
        return {
            "title": check_text(inc.title, "title", max_len=10_000),
            "status": check_choice(inc.status, "status", INCIDENT_STATUSES),
            "priority": check_choice(inc.priority, "priority", _PRIORITIES),
            "score": float(inc.score),
            "severity": check_int(inc.severity, "severity"),
            "blast_radius": float(inc.blast_radius),
            "slo_impact": float(inc.slo_impact),
            "started_at": ms_time(inc.started_at, "started_at"),
            "last_activity": ms_time(inc.last_activity, "last_activity"),
            "resolved_at": None if inc.resolved_at is None else ms_time(inc.resolved_at, "resolved_at"),
            "services": sorted(check_text(s, "services", max_len=200) for s in inc.services),
            "recurrence_of": None if inc.recurrence_of is None else check_text(inc.recurrence_of, "recurrence_of",
                                                                               max_len=64),
            "root_cause": None if inc.root_cause is None else check_text(inc.root_cause, "root_cause"),
            "rca": to_jsonable(inc.rca, "rca"),
            "evidence": [str(e) for e in inc.evidence],
        }
    except AttributeError as exc:
        raise DataError(f"not an Incident: {exc}", column="incident") from None
    except (TypeError, ValueError) as exc:
        if isinstance(exc, DataError):
            raise
        raise DataError(f"not an Incident: {exc}", column="incident") from None


def _alert_fields(fp: str, tracked: Any) -> dict[str, Any]:
    try:
        alert = tracked.alert
        return {
            "fingerprint": check_text(fp, "fingerprint", max_len=16),
            "name": check_text(alert.name, "alertname"),
            "service": check_text(tracked.service, "service", max_len=200, allow_empty=True),
            "status": check_choice(alert.status, "status", ("firing", "resolved")),
            "labels": dict(alert.labels),
            "annotations": {str(k): str(v) for k, v in alert.annotations.items()},
            "generator_url": str(alert.generator_url),
            "starts_at": ms_time(alert.starts_at, "starts_at"),
            "ends_at": None if alert.ends_at is None else ms_time(alert.ends_at, "ends_at"),
            "first_seen": ms_time(tracked.first_seen, "first_seen"),
            "last_seen": ms_time(tracked.last_seen, "last_seen"),
            "repeats": check_int(tracked.repeats, "repeats"),
        }
    except AttributeError as exc:
        raise DataError(f"alert {fp}: not a TrackedAlert: {exc}", column="alerts") from None


def _assign(row: object, values: dict[str, Any]) -> bool:
    """Set the values that differ; whether any did."""
    changed = False
    for name, value in values.items():
        if getattr(row, name) != value:
            setattr(row, name, value)
            changed = True
    return changed


class IncidentRepository(Repository):
    def save(self, tenant: str, incident: Any) -> IncidentRecord:
        """Store the incident as it is now (idempotent; see the module docstring)."""
        with self._ctx.write() as s:
            return self._save(s, self._tenant(s, tenant), incident)

    def save_many(self, tenant: str, incidents: Iterable[Any]) -> list[IncidentRecord]:
        """Store several incidents in one transaction."""
        with self._ctx.write() as s:
            t = self._tenant(s, tenant)
            return [self._save(s, t, inc) for inc in incidents]

    def _save(self, s: Session, tenant: str, incident: Any) -> IncidentRecord:
        if not all(hasattr(incident, a) for a in ("id", "alerts", "status", "started_at")):
            raise DataError(f"not an Incident: a {type(incident).__name__}", column="incident")
        key = check_text(incident.id, "id", max_len=64)
        fields = _fields(incident)
        alerts = {fp: _alert_fields(fp, tr) for fp, tr in dict(getattr(incident, "alerts", {})).items()}
        now = self._now()
        ins = self._ctx.insert(IncidentRow.__table__).values(tenant_id=tenant, key=key, created_at=now,
                                                             updated_at=now, **fields)
        s.execute(ins.on_conflict_do_nothing(index_elements=["tenant_id", "key"]))
        row = s.scalar(select(IncidentRow).where(IncidentRow.tenant_id == tenant, IncidentRow.key == key)
                       .options(selectinload(IncidentRow.alerts)).with_for_update())
        assert row is not None
        changed = _assign(row, fields)
        existing = {a.fingerprint: a for a in row.alerts}
        for fp, values in alerts.items():
            arow = existing.get(fp)
            if arow is None:
                row.alerts.append(IncidentAlertRow(**values))
                changed = True
            else:
                changed = _assign(arow, values) or changed
        for fp, arow in existing.items():
            if fp not in alerts:
                row.alerts.remove(arow)
                changed = True
        if changed:
            row.updated_at = now
        s.flush()
        return _incident_record(row)

    def get(self, tenant: str, key: str) -> IncidentRecord:
        k = check_text(key, "key", max_len=64)
        with self._ctx.read() as s:
            t = self._tenant(s, tenant)
            row = s.scalar(select(IncidentRow).where(IncidentRow.tenant_id == t, IncidentRow.key == k)
                           .options(selectinload(IncidentRow.alerts)))
            if row is None:
                raise NotFoundError("incident", k, t)
            return _incident_record(row)

    def list(self, tenant: str, *, status: str | Sequence[str] | None = None, service: str | None = None,
             since: float | None = None, limit: int = 100, offset: int = 0) -> list[IncidentRecord]:
        """Incidents, latest activity first; ``since`` keeps those active at or after it."""
        n = self._limit(limit, 10_000)
        skip = check_int(offset, "offset", minimum=0)
        with self._ctx.read() as s:
            t = self._tenant(s, tenant)
            q = select(IncidentRow).where(IncidentRow.tenant_id == t).options(selectinload(IncidentRow.alerts))
            if status is not None:
                wanted = [status] if isinstance(status, str) else list(status)
                q = q.where(IncidentRow.status.in_([check_choice(x, "status", INCIDENT_STATUSES) for x in wanted]))
            if since is not None:
                q = q.where(IncidentRow.last_activity >= ms_time(since, "since"))
            if service is not None:
                q = q.where(self._has_service(check_text(service, "service", max_len=200)))
            q = q.order_by(IncidentRow.last_activity.desc(), IncidentRow.id.desc()).limit(n).offset(skip)
            return [_incident_record(r) for r in s.scalars(q)]

    def _has_service(self, service: str) -> ColumnElement[bool]:
        """``service`` is in the incident's JSON list of services (JSONB containment / SQLite's json_each)."""
        if self._ctx.db.dialect == "postgresql":
            return cast(IncidentRow.services, JSONB).op("@>")(literal([service], JSONB))
        member = func.json_each(IncidentRow.services).table_valued("value")
        return exists(select(1).select_from(member).where(member.c.value == service))

    def count(self, tenant: str, *, status: str | None = None) -> int:
        with self._ctx.read() as s:
            t = self._tenant(s, tenant)
            q = select(func.count()).select_from(IncidentRow).where(IncidentRow.tenant_id == t)
            if status is not None:
                q = q.where(IncidentRow.status == check_choice(status, "status", INCIDENT_STATUSES))
            return int(s.scalar(q) or 0)

    def find_by_fingerprint(self, tenant: str, fingerprint: str, *, open_only: bool = True) -> IncidentRecord | None:
        """The latest incident holding an alert with this fingerprint (only open ones by default)."""
        fp = check_text(fingerprint, "fingerprint", max_len=16)
        with self._ctx.read() as s:
            t = self._tenant(s, tenant)
            q = (select(IncidentRow).join(IncidentAlertRow)
                 .where(IncidentRow.tenant_id == t, IncidentAlertRow.fingerprint == fp)
                 .options(selectinload(IncidentRow.alerts)))
            if open_only:
                q = q.where(IncidentRow.status == "open")
            row = s.scalar(q.order_by(IncidentRow.last_activity.desc()).limit(1))
            return None if row is None else _incident_record(row)

    def load(self, tenant: str, *, status: Sequence[str] = ("open", "resolved"),
             limit: int = 10_000) -> builtins.list[Any]:
        """Stored incidents as :class:`~opsmind.incidents.correlate.Incident` objects, oldest first: the history a
        restarted :class:`~opsmind.incidents.correlate.IncidentCorrelator` continues from."""
        records = self.list(tenant, status=status, limit=limit)
        return [r.to_incident() for r in sorted(records, key=lambda r: (r.started_at, r.id))]

    def delete(self, tenant: str, key: str) -> None:
        """Delete an incident (e.g. one the correlator merged into another) with its alerts."""
        k = check_text(key, "key", max_len=64)
        with self._ctx.write() as s:
            t = self._tenant(s, tenant)
            if rowcount(s.execute(delete(IncidentRow).where(IncidentRow.tenant_id == t, IncidentRow.key == k))) == 0:
                raise NotFoundError("incident", k, t)
