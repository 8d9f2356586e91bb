"""Findings: anomalies, forecasts, recommendations, and people's feedback on anomalies.

Each is written with an upsert on its natural key, so recording the same finding twice (an engine replaying its
input after a restart) leaves one row with the latest values: an anomaly is ``(series, ts)``, a forecast
``(series, method, issued_at)``, a recommendation ``(kind, target, issued_at)`` (its ``status``, which people
change, is kept), a feedback ``(series, ts, author)``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from opsmind.core.errors import DataError
from opsmind.store._base import Repository, chunks, to_record
from opsmind.store.columns import (
    check_choice,
    check_float,
    check_int,
    check_slug,
    check_text,
    check_time,
    from_ms,
    to_jsonable,
    to_ms,
)
from opsmind.store.errors import NotFoundError
from opsmind.store.models import (
    FEEDBACK_VERDICTS,
    RECOMMENDATION_STATUSES,
    Anomaly,
    Feedback,
    ForecastRow,
    Recommendation,
    Series,
)
from opsmind.store.records import AnomalyRecord, FeedbackRecord, ForecastRecord, RecommendationRecord

__all__ = [
    "AnomalyIn",
    "AnomalyRepository",
    "FeedbackRepository",
    "ForecastRepository",
    "RecommendationRepository",
    "anomalies_from_detection",
]


@dataclass(frozen=True)
class AnomalyIn:
    """One anomaly to record: the series, the time (Unix seconds) and what the detector and thresholder said."""

    series_id: int
    ts: float
    probability: float
    severity: str | None = None
    score: float | None = None
    detector: str | None = None
    suppressed: bool = False
    evidence: Any = None


def anomalies_from_detection(detection: Any, series_ids: Mapping[str, int], *, detector: str = "opsmind",
                             ) -> list[AnomalyIn]:
    """Anomalies from a :class:`opsmind.detect.pipeline.Detection`: one per alert row and attributed column
    (``top_dims``; every column at the row's maximum when none is attributed), with the column's own
    probability and the row's evidence. ``series_ids`` maps the frame's columns to series ids."""
    frame = detection.frame
    seconds = frame.seconds()
    out: list[AnomalyIn] = []
    for i in detection.anomalies():
        row_p = float(detection.probability[i])
        dims = list(detection.top_dims[i]) if detection.top_dims else []
        if not dims:
            dims = [c for j, c in enumerate(frame.columns) if detection.column_probability[i, j] >= row_p]
        for col in dims:
            if col not in series_ids:
                raise DataError(f"no series id for column {col!r}", column="series_ids")
            j = frame.columns.index(col)
            out.append(AnomalyIn(
                series_id=series_ids[col], ts=float(seconds[i]),
                probability=float(detection.column_probability[i, j]), severity=detection.severity[i],
                detector=detector,
                evidence={"row_probability": row_p, "attributed": dims,
                          "column_probability": {c: float(detection.column_probability[i, k])
                                                 for k, c in enumerate(frame.columns)}},
            ))
    return out


def _anomaly_row(a: AnomalyIn, i: int) -> dict[str, Any]:
    if not isinstance(a, AnomalyIn):
        raise DataError(f"expected an AnomalyIn, got {type(a).__name__}", row=i)
    p = check_float(a.probability, "probability", allow_none=False)
    if p is None or not 0.0 <= p <= 1.0:
        raise DataError(f"probability must be in [0, 1], got {a.probability!r}", row=i, column="probability")
    score = check_float(a.score, "score")
    return {
        "series_id": check_int(a.series_id, "series_id"),
        "ts": check_time(a.ts, "ts"),
        "probability": p,
        "score": None if score is None or not math.isfinite(score) else score,
        "severity": None if a.severity is None else check_text(a.severity, "severity", max_len=16),
        "detector": None if a.detector is None else check_text(a.detector, "detector", max_len=200),
        "suppressed": bool(a.suppressed),
        "evidence": to_jsonable(a.evidence if a.evidence is not None else {}, "evidence"),
    }


class AnomalyRepository(Repository):
    def record(self, tenant: str, series_id: int, ts: float, probability: float, *, severity: str | None = None,
               score: float | None = None, detector: str | None = None, suppressed: bool = False,
               evidence: Any = None) -> AnomalyRecord:
        """Record one anomaly (an upsert on ``(series, ts)``) and return it."""
        row = _anomaly_row(AnomalyIn(series_id, ts, probability, severity, score, detector, suppressed, evidence), 0)
        with self._ctx.write() as s:
            self._upsert(s, self._tenant(s, tenant), [row])
            stored = s.scalar(select(Anomaly).where(Anomaly.series_id == row["series_id"], Anomaly.ts == row["ts"]))
            assert stored is not None
            s.refresh(stored)
            return to_record(AnomalyRecord, stored)

    def record_decision(self, tenant: str, series_id: int, ts: float, decision: Any, *, score: float | None = None,
                        detector: str | None = None, evidence: Any = None) -> AnomalyRecord:
        """Record a :class:`opsmind.detect.threshold.Decision` (its probability, severity, suppression)."""
        return self.record(tenant, series_id, ts, decision.probability, severity=decision.severity, score=score,
                           detector=detector, suppressed=decision.suppressed, evidence=evidence)

    def record_many(self, tenant: str, items: Iterable[AnomalyIn]) -> int:
        """Record many anomalies in one transaction; returns how many were given."""
        rows = [_anomaly_row(a, i) for i, a in enumerate(items)]
        if not rows:
            return 0
        with self._ctx.write() as s:
            self._upsert(s, self._tenant(s, tenant), rows)
        return len(rows)

    def _upsert(self, s: Session, tenant: str, rows: list[dict[str, Any]]) -> None:
        self._own_series(s, tenant, {r["series_id"] for r in rows})
        now = self._now()
        for r in rows:
            r["tenant_id"] = tenant
            r["created_at"] = now
        stmt = self._ctx.insert(Anomaly.__table__)
        stmt = stmt.on_conflict_do_update(
            index_elements=["series_id", "ts"],
            set_={c: stmt.excluded[c] for c in ("probability", "score", "severity", "detector", "suppressed",
                                                "evidence")})
        for part in chunks(rows, 1000):
            s.execute(stmt, part)

    def get(self, tenant: str, anomaly_id: int) -> AnomalyRecord:
        aid = check_int(anomaly_id, "anomaly_id")
        with self._ctx.read() as s:
            t = self._tenant(s, tenant)
            row = s.scalar(select(Anomaly).where(Anomaly.tenant_id == t, Anomaly.id == aid))
            if row is None:
                raise NotFoundError("anomaly", aid, t)
            return to_record(AnomalyRecord, row)

    def list(self, tenant: str, *, series_id: int | None = None, service: str | None = None,
             since: float | None = None, until: float | None = None, min_probability: float | None = None,
             include_suppressed: bool = True, limit: int = 100, offset: int = 0) -> list[AnomalyRecord]:
        """Anomalies newest first."""
        n = self._limit(limit)
        skip = check_int(offset, "offset", minimum=0)
        with self._ctx.read() as s:
            t = self._tenant(s, tenant)
            q = select(Anomaly).where(Anomaly.tenant_id == t)
            if series_id is not None:
                q = q.where(Anomaly.series_id == check_int(series_id, "series_id"))
            if service is not None:
                svc = check_text(service, "service", max_len=200)
                q = q.where(Anomaly.series_id.in_(select(Series.id).where(Series.tenant_id == t,
                                                                          Series.service == svc)))
            if since is not None:
                q = q.where(Anomaly.ts >= check_time(since, "since"))
            if until is not None:
                q = q.where(Anomaly.ts <= check_time(until, "until"))
            if min_probability is not None:
                q = q.where(Anomaly.probability >= check_float(min_probability, "min_probability"))
            if not include_suppressed:
                q = q.where(Anomaly.suppressed.is_(False))
            rows = s.scalars(q.order_by(Anomaly.ts.desc(), Anomaly.id.desc()).limit(n).offset(skip))
            return [to_record(AnomalyRecord, r) for r in rows]

    def count(self, tenant: str, *, series_id: int | None = None) -> int:
        with self._ctx.read() as s:
            t = self._tenant(s, tenant)
            q = select(func.count()).select_from(Anomaly).where(Anomaly.tenant_id == t)
            if series_id is not None:
                q = q.where(Anomaly.series_id == check_int(series_id, "series_id"))
            return int(s.scalar(q) or 0)


def _floats(values: Any, field: str) -> list[float | None]:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise DataError(f"must be one-dimensional, got shape {arr.shape}", column=field)
    return [float(v) if math.isfinite(v) else None for v in arr.tolist()]


def _nan(values: Sequence[float | None]) -> list[float]:
    return [math.nan if v is None else float(v) for v in values]


def _forecast_record(row: ForecastRow) -> ForecastRecord:
    p = row.payload
    return to_record(
        ForecastRecord, row,
        timestamps=[from_ms(int(v)) for v in p["timestamps"]],
        mean=_nan(p["mean"]),
        intervals={int(lv): (_nan(lo), _nan(hi)) for lv, (lo, hi) in p["intervals"].items()},
        notes=list(row.notes),
    )


class ForecastRepository(Repository):
    def save(self, tenant: str, series_id: int, forecast: Any, *, issued_at: float | None = None) -> ForecastRecord:
        """Store a :class:`opsmind.forecast.base.Forecast` of a series (an upsert on ``(series, method,
        issued_at)``). ``issued_at`` is the time of the last observation used; by default one step before the
        first forecast time."""
        try:
            ts = np.asarray(forecast.timestamps).astype("datetime64[ms]").astype(np.int64)
            mean = _floats(forecast.mean, "mean")
            intervals = {str(int(lv)): [_floats(lo, f"lower_{lv}"), _floats(hi, f"upper_{lv}")]
                         for lv, (lo, hi) in dict(forecast.intervals).items()}
            method = check_text(forecast.method, "method", max_len=200)
            notes = [str(n) for n in forecast.notes]
        except AttributeError as exc:
            raise DataError(f"not a Forecast: {exc}", column="forecast") from None
        if ts.shape[0] == 0 or len(mean) != ts.shape[0]:
            raise DataError(f"a forecast needs as many means as timestamps (got {len(mean)} and {ts.shape[0]}, "
                            f"at least one)", column="forecast")
        if issued_at is None:
            if ts.shape[0] < 2:
                raise DataError("a one-step forecast needs issued_at (the step cannot be inferred)",
                                column="issued_at")
            issued_ms = int(ts[0] - (ts[1] - ts[0]))
        else:
            issued_ms = to_ms(check_time(issued_at, "issued_at"))
        payload = {"timestamps": ts.tolist(), "mean": mean, "intervals": intervals}
        values = {"horizon": int(ts.shape[0]), "start": from_ms(int(ts[0])), "end": from_ms(int(ts[-1])),
                  "payload": payload, "notes": notes}
        with self._ctx.write() as s:
            t = self._tenant(s, tenant)
            (sid,) = self._own_series(s, t, [series_id])
            stmt = self._ctx.insert(ForecastRow.__table__).values(
                tenant_id=t, series_id=sid, issued_at=from_ms(issued_ms), method=method, created_at=self._now(),
                **values)
            s.execute(stmt.on_conflict_do_update(index_elements=["series_id", "method", "issued_at"],
                                                 set_={k: stmt.excluded[k] for k in values}))
            row = s.scalar(select(ForecastRow).where(ForecastRow.series_id == sid, ForecastRow.method == method,
                                                     ForecastRow.issued_at == from_ms(issued_ms)))
            assert row is not None
            s.refresh(row)
            return _forecast_record(row)

    def get(self, tenant: str, forecast_id: int) -> ForecastRecord:
        fid = check_int(forecast_id, "forecast_id")
        with self._ctx.read() as s:
            t = self._tenant(s, tenant)
            row = s.scalar(select(ForecastRow).where(ForecastRow.tenant_id == t, ForecastRow.id == fid))
            if row is None:
                raise NotFoundError("forecast", fid, t)
            return _forecast_record(row)

    def latest(self, tenant: str, series_id: int, method: str | None = None) -> ForecastRecord:
        """The most recently issued forecast of the series (``NotFoundError`` when there is none)."""
        with self._ctx.read() as s:
            t = self._tenant(s, tenant)
            (sid,) = self._own_series(s, t, [series_id])
            q = select(ForecastRow).where(ForecastRow.series_id == sid)
            if method is not None:
                q = q.where(ForecastRow.method == check_text(method, "method", max_len=200))
            row = s.scalar(q.order_by(ForecastRow.issued_at.desc(), ForecastRow.id.desc()).limit(1))
            if row is None:
                raise NotFoundError("forecast of series", sid, t)
            return _forecast_record(row)

    def list(self, tenant: str, *, series_id: int | None = None, since: float | None = None, limit: int = 100,
             offset: int = 0) -> list[ForecastRecord]:
        """Forecasts, most recently issued first."""
        n = self._limit(limit)
        skip = check_int(offset, "offset", minimum=0)
        with self._ctx.read() as s:
            t = self._tenant(s, tenant)
            q = select(ForecastRow).where(ForecastRow.tenant_id == t)
            if series_id is not None:
                q = q.where(ForecastRow.series_id == check_int(series_id, "series_id"))
            if since is not None:
                q = q.where(ForecastRow.issued_at >= check_time(since, "since"))
            rows = s.scalars(q.order_by(ForecastRow.issued_at.desc(), ForecastRow.id.desc()).limit(n).offset(skip))
            return [_forecast_record(r) for r in rows]


RecommendationStatus = Literal["open", "accepted", "applied", "dismissed"]


class RecommendationRepository(Repository):
    def save(self, tenant: str, kind: str, target: str, issued_at: float, *, summary: str = "",
             service: str | None = None, series_id: int | None = None, savings_per_month: float | None = None,
             payload: Any = None, evidence: Any = None, status: RecommendationStatus = "open",
             ) -> RecommendationRecord:
        """Store a recommendation (``kind``: ``scaling``, ``rightsizing``, ``capacity``, ...; ``target``: what it
        is about). ``payload`` keeps the analyzer's result whole (a dataclass or pydantic model is converted),
        ``evidence`` its reasoning. An upsert on ``(kind, target, issued_at)`` that keeps a changed status."""
        values = {
            "summary": check_text(summary, "summary", max_len=100_000, allow_empty=True),
            "service": None if service is None else check_text(service, "service", max_len=200),
            "savings_per_month": check_float(savings_per_month, "savings_per_month"),
            "payload": to_jsonable(payload if payload is not None else {}, "payload"),
            "evidence": to_jsonable(evidence if evidence is not None else {}, "evidence"),
            "updated_at": self._now(),
        }
        if values["savings_per_month"] is not None and not math.isfinite(values["savings_per_month"]):
            raise DataError("must be finite", column="savings_per_month")
        k = check_slug(kind, "kind")
        tgt = check_text(target, "target")
        when = check_time(issued_at, "issued_at")
        st = check_choice(status, "status", RECOMMENDATION_STATUSES)
        with self._ctx.write() as s:
            t = self._tenant(s, tenant)
            if series_id is not None:
                (values["series_id"],) = self._own_series(s, t, [series_id])
            stmt = self._ctx.insert(Recommendation.__table__).values(
                tenant_id=t, kind=k, target=tgt, issued_at=when, status=st, created_at=self._now(), **values)
            s.execute(stmt.on_conflict_do_update(index_elements=["tenant_id", "kind", "target", "issued_at"],
                                                 set_={c: stmt.excluded[c] for c in values}))
            row = s.scalar(select(Recommendation).where(
                Recommendation.tenant_id == t, Recommendation.kind == k, Recommendation.target == tgt,
                Recommendation.issued_at == when))
            assert row is not None
            s.refresh(row)
            return to_record(RecommendationRecord, row)

    def get(self, tenant: str, recommendation_id: int) -> RecommendationRecord:
        with self._ctx.read() as s:
            return to_record(RecommendationRecord, self._row(s, tenant, recommendation_id))

    def _row(self, s: Session, tenant: str, recommendation_id: int) -> Recommendation:
        rid = check_int(recommendation_id, "recommendation_id")
        t = self._tenant(s, tenant)
        row = s.scalar(select(Recommendation).where(Recommendation.tenant_id == t, Recommendation.id == rid))
        if row is None:
            raise NotFoundError("recommendation", rid, t)
        return row

    def set_status(self, tenant: str, recommendation_id: int, status: RecommendationStatus) -> RecommendationRecord:
        st = check_choice(status, "status", RECOMMENDATION_STATUSES)
        with self._ctx.write() as s:
            row = self._row(s, tenant, recommendation_id)
            row.status = st
            row.updated_at = self._now()
            s.flush()
            return to_record(RecommendationRecord, row)

    def list(self, tenant: str, *, kind: str | None = None, service: str | None = None,
             status: RecommendationStatus | None = None, since: float | None = None, limit: int = 100,
             offset: int = 0) -> list[RecommendationRecord]:
        """Recommendations, most recently issued first."""
        n = self._limit(limit)
        skip = check_int(offset, "offset", minimum=0)
        with self._ctx.read() as s:
            t = self._tenant(s, tenant)
            q = select(Recommendation).where(Recommendation.tenant_id == t)
            if kind is not None:
                q = q.where(Recommendation.kind == check_slug(kind, "kind"))
            if service is not None:
                q = q.where(Recommendation.service == check_text(service, "service", max_len=200))
            if status is not None:
                q = q.where(Recommendation.status == check_choice(status, "status", RECOMMENDATION_STATUSES))
            if since is not None:
                q = q.where(Recommendation.issued_at >= check_time(since, "since"))
            rows = s.scalars(q.order_by(Recommendation.issued_at.desc(), Recommendation.id.desc())
                             .limit(n).offset(skip))
            return [to_record(RecommendationRecord, r) for r in rows]


Verdict = Literal["true_positive", "false_positive", "missed"]


class FeedbackRepository(Repository):
    def mark(self, tenant: str, anomaly_id: int, verdict: Literal["true_positive", "false_positive"], by: str, *,
             comment: str | None = None) -> FeedbackRecord:
        """A person (``by``) says an anomaly was a true or a false positive; marking again replaces their verdict."""
        v = check_choice(verdict, "verdict", ("true_positive", "false_positive"))
        aid = check_int(anomaly_id, "anomaly_id")
        with self._ctx.write() as s:
            t = self._tenant(s, tenant)
            anomaly = s.scalar(select(Anomaly).where(Anomaly.tenant_id == t, Anomaly.id == aid))
            if anomaly is None:
                raise NotFoundError("anomaly", aid, t)
            return self._upsert(s, t, anomaly.series_id, anomaly.ts, aid, v, by, comment)

    def report_missed(self, tenant: str, series_id: int, ts: float, by: str, *,
                      comment: str | None = None) -> FeedbackRecord:
        """A person says the series was anomalous at ``ts`` and opsmind did not flag it (a confirmed miss)."""
        when = check_time(ts, "ts")
        with self._ctx.write() as s:
            t = self._tenant(s, tenant)
            (sid,) = self._own_series(s, t, [series_id])
            aid = s.scalar(select(Anomaly.id).where(Anomaly.series_id == sid, Anomaly.ts == when))
            return self._upsert(s, t, sid, when, aid, "missed", by, comment)

    def _upsert(self, s: Session, tenant: str, series_id: int, ts: float, anomaly_id: int | None, verdict: str,
                by: str, comment: str | None) -> FeedbackRecord:
        author = check_text(by, "by", max_len=200)
        note = None if comment is None else check_text(comment, "comment", max_len=10_000, allow_empty=True)
        values = {"anomaly_id": anomaly_id, "verdict": verdict, "comment": note, "created_at": self._now()}
        stmt = self._ctx.insert(Feedback.__table__).values(tenant_id=tenant, series_id=series_id, ts=ts,
                                                           author=author, **values)
        s.execute(stmt.on_conflict_do_update(index_elements=["series_id", "ts", "author"],
                                             set_={c: stmt.excluded[c] for c in values}))
        row = s.scalar(select(Feedback).where(Feedback.series_id == series_id, Feedback.ts == ts,
                                              Feedback.author == author))
        assert row is not None
        s.refresh(row)
        return to_record(FeedbackRecord, row)

    def list(self, tenant: str, *, series_id: int | None = None, anomaly_id: int | None = None,
             verdict: Verdict | None = None, since: float | None = None, limit: int = 100,
             offset: int = 0) -> list[FeedbackRecord]:
        """Feedback, newest first."""
        n = self._limit(limit)
        skip = check_int(offset, "offset", minimum=0)
        with self._ctx.read() as s:
            t = self._tenant(s, tenant)
            q = select(Feedback).where(Feedback.tenant_id == t)
            if series_id is not None:
                q = q.where(Feedback.series_id == check_int(series_id, "series_id"))
            if anomaly_id is not None:
                q = q.where(Feedback.anomaly_id == check_int(anomaly_id, "anomaly_id"))
            if verdict is not None:
                q = q.where(Feedback.verdict == check_choice(verdict, "verdict", FEEDBACK_VERDICTS))
            if since is not None:
                q = q.where(Feedback.created_at >= check_time(since, "since"))
            rows = s.scalars(q.order_by(Feedback.created_at.desc(), Feedback.id.desc()).limit(n).offset(skip))
            return [to_record(FeedbackRecord, r) for r in rows]

    def counts(self, tenant: str, series_id: int) -> dict[str, int]:
        """How many of each verdict the series has: what per-series calibration learns from."""
        with self._ctx.read() as s:
            t = self._tenant(s, tenant)
            (sid,) = self._own_series(s, t, [series_id])
            rows = s.execute(select(Feedback.verdict, func.count()).where(Feedback.series_id == sid)
                             .group_by(Feedback.verdict)).all()
        out = dict.fromkeys(FEEDBACK_VERDICTS, 0)
        out.update({str(v): int(c) for v, c in rows})
        return out
