"""Versioned per-series model state: the model lifecycle.

For each series and ``role`` (``detector``, ``forecaster``, ``calibration``, ...) the store keeps numbered versions:
which model (``kind`` and its registry ``spec``), when it was trained (``trained_at``), on what (``train_start`` ..
``train_end``, ``n_train`` observations), how well it backtested (``backtest_error`` in ``backtest_metric``), and
its state as a pickle or JSON. Saving a state identical to the latest version (same kind, training range and
bytes) returns that version instead of adding one, so a restarted engine that retrains on the same data does
not grow the history.
"""

from __future__ import annotations

import hashlib
import json
import math
import pickle
from typing import Any, Literal

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from opsmind.core.errors import DataError
from opsmind.store._base import Repository, rowcount, to_record
from opsmind.store.columns import check_choice, check_float, check_int, check_slug, check_text, ms_time, to_jsonable
from opsmind.store.errors import NotFoundError
from opsmind.store.models import STATE_FORMATS, ModelState
from opsmind.store.records import ModelStateRecord

__all__ = ["ModelStateRepository"]

_INFO_COLUMNS = [c for c in ModelState.__table__.columns.keys() if c != "state"]  # noqa: SIM118


def _encode(state: Any, fmt: str) -> bytes:
    if fmt == "json":
        return json.dumps(to_jsonable(state, "state"), sort_keys=True, separators=(",", ":")).encode("utf-8")
    try:
        return pickle.dumps(state, protocol=5)
    except (pickle.PicklingError, TypeError, AttributeError) as exc:
        raise DataError(f"cannot be pickled: {exc}", column="state") from None


class ModelStateRepository(Repository):
    def save(self, tenant: str, series_id: int, role: str, state: Any, *, kind: str, trained_at: float,
             spec: Any = None, state_format: Literal["pickle", "json"] = "pickle", train_start: float | None = None,
             train_end: float | None = None, n_train: int | None = None, backtest_error: float | None = None,
             backtest_metric: str | None = None) -> ModelStateRecord:
        """Store a new version of the series' ``role`` model (or return the latest when it is the same)."""
        fmt = check_choice(state_format, "state_format", STATE_FORMATS)
        blob = _encode(state, fmt)
        digest = hashlib.sha256(blob).hexdigest()
        error = check_float(backtest_error, "backtest_error")
        values: dict[str, Any] = {
            "role": check_slug(role, "role"),
            "kind": check_text(kind, "kind", max_len=200),
            "spec": to_jsonable(spec if spec is not None else {"type": kind}, "spec"),
            "trained_at": ms_time(trained_at, "trained_at"),
            "train_start": None if train_start is None else ms_time(train_start, "train_start"),
            "train_end": None if train_end is None else ms_time(train_end, "train_end"),
            "n_train": None if n_train is None else check_int(n_train, "n_train", minimum=0),
            "backtest_error": None if error is None or not math.isfinite(error) else error,
            "backtest_metric": None if backtest_metric is None else check_text(backtest_metric, "backtest_metric",
                                                                               max_len=64),
            "state_format": fmt,
            "state_sha256": digest,
        }
        if values["train_start"] is not None and values["train_end"] is not None and \
                values["train_end"] < values["train_start"]:
            raise DataError("train_end is before train_start", column="train_end")
        with self._ctx.write() as s:
            t = self._tenant(s, tenant)
            (sid,) = self._own_series(s, t, [series_id])
            latest = self._latest_row(s, sid, values["role"])
            if latest is not None and all(getattr(latest, k) == values[k] for k in (
                    "kind", "trained_at", "train_start", "train_end", "state_format", "state_sha256")):
                return to_record(ModelStateRecord, latest, state=latest.state)
            row = ModelState(tenant_id=t, series_id=sid, version=(latest.version + 1) if latest else 1, state=blob,
                             created_at=self._now(), **values)
            s.add(row)
            s.flush()
            return to_record(ModelStateRecord, row, state=blob)

    @staticmethod
    def _latest_row(s: Session, series_id: int, role: str) -> ModelState | None:
        return s.scalar(select(ModelState).where(ModelState.series_id == series_id, ModelState.role == role)
                        .order_by(ModelState.version.desc()).limit(1))

    def latest(self, tenant: str, series_id: int, role: str) -> ModelStateRecord:
        """The newest version, with its state (``NotFoundError`` when the series has none for ``role``)."""
        r = check_slug(role, "role")
        with self._ctx.read() as s:
            t = self._tenant(s, tenant)
            (sid,) = self._own_series(s, t, [series_id])
            row = self._latest_row(s, sid, r)
            if row is None:
                raise NotFoundError(f"{r} model state of series", sid, t)
            return to_record(ModelStateRecord, row, state=row.state)

    def get(self, tenant: str, series_id: int, role: str, version: int) -> ModelStateRecord:
        r = check_slug(role, "role")
        v = check_int(version, "version", minimum=1)
        with self._ctx.read() as s:
            t = self._tenant(s, tenant)
            (sid,) = self._own_series(s, t, [series_id])
            row = s.scalar(select(ModelState).where(ModelState.series_id == sid, ModelState.role == r,
                                                    ModelState.version == v))
            if row is None:
                raise NotFoundError(f"{r} model state version {v} of series", sid, t)
            return to_record(ModelStateRecord, row, state=row.state)

    def history(self, tenant: str, series_id: int, role: str | None = None) -> list[ModelStateRecord]:
        """Every version (without the state bytes), newest first."""
        with self._ctx.read() as s:
            t = self._tenant(s, tenant)
            (sid,) = self._own_series(s, t, [series_id])
            cols = [ModelState.__table__.c[c] for c in _INFO_COLUMNS]
            q = select(*cols).where(ModelState.series_id == sid)
            if role is not None:
                q = q.where(ModelState.role == check_slug(role, "role"))
            rows = s.execute(q.order_by(ModelState.role, ModelState.version.desc())).mappings().all()
            return [ModelStateRecord.model_validate({**dict(r), "tenant": r["tenant_id"]}) for r in rows]

    def prune(self, tenant: str, series_id: int, role: str, *, keep: int) -> int:
        """Delete all but the newest ``keep`` versions; returns how many were deleted."""
        r = check_slug(role, "role")
        n = check_int(keep, "keep", minimum=1)
        with self._ctx.write() as s:
            t = self._tenant(s, tenant)
            (sid,) = self._own_series(s, t, [series_id])
            top = s.scalar(select(func.max(ModelState.version)).where(ModelState.series_id == sid,
                                                                      ModelState.role == r))
            if top is None:
                return 0
            return rowcount(s.execute(delete(ModelState).where(ModelState.series_id == sid, ModelState.role == r,
                                                               ModelState.version <= top - n)))
