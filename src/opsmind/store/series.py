"""Series metadata and their samples.

A series is a metric name and a label set (Prometheus' identity: labels with an empty value are no labels);
``__name__`` in the labels is taken as the name. Its service is given, or read from the first of the labels
``service``, ``app``, ``job``, ``deployment``, ``container``.

Samples are ``(series, ts, value)`` with ``ts`` kept in integer milliseconds (the Prometheus unit: two samples
less than half a millisecond apart are the same sample). Inserting is idempotent: a sample already stored is
left as it is (``ON CONFLICT DO NOTHING``; the first value wins), so an engine replaying its input after a restart
adds nothing twice. Bulk inserts use ``executemany`` on SQLite and one ``INSERT ... SELECT FROM unnest(...)``
per 50,000 rows on PostgreSQL.
"""

from __future__ import annotations

import builtins
import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import chain
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from opsmind.core import FloatArray, Frame
from opsmind.core.errors import DataError
from opsmind.store._base import Repository, chunks, rowcount, to_record
from opsmind.store.columns import check_int, check_text, check_time, to_ms
from opsmind.store.errors import NotFoundError
from opsmind.store.models import Sample, Series
from opsmind.store.records import IngestResult, Samples, SeriesRecord

__all__ = ["SERVICE_LABELS", "SampleRepository", "SeriesRepository", "SeriesSamples", "series_key"]

SERVICE_LABELS = ("service", "app", "job", "deployment", "container")
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_PG_BATCH = 50_000
_SQLITE_BATCH = 100_000


def series_key(name: str, labels: Mapping[str, str]) -> str:
    """The SHA-256 of the canonical form of a series (name and sorted labels)."""
    canon = json.dumps([name, sorted(labels.items())], separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canon.encode("utf-8")).hexdigest()


def _identity(name: str | None, labels: Mapping[str, str] | None, where: str) -> tuple[str, dict[str, str]]:
    """Checked ``(name, labels)``: ``__name__`` moves to the name, empty values are dropped."""
    if labels is None:
        labels = {}
    if not isinstance(labels, Mapping):
        raise DataError(f"labels must be a mapping of name to value, got {type(labels).__name__}", where=where)
    out: dict[str, str] = {}
    for k, v in labels.items():
        if not isinstance(k, str) or not _LABEL_NAME.match(k):
            raise DataError(f"label name {k!r} is not a valid Prometheus label name", where=where)
        if not isinstance(v, str):
            raise DataError(f"label {k}={v!r}: values must be strings", where=where)
        if v != "" and k != "__name__":
            out[k] = v
    label_name = labels.get("__name__")
    if name is None:
        name = label_name
    elif label_name not in (None, "", name):
        raise DataError(f"name {name!r} disagrees with the __name__ label {label_name!r}", where=where)
    if not isinstance(name, str) or not name:
        raise DataError("a series needs a metric name (name=, or a __name__ label)", where=where)
    if len(name) > 255:
        raise DataError(f"metric name is {len(name)} characters long; at most 255", where=where)
    return name, out


def _service(labels: Mapping[str, str], service: str | None) -> str | None:
    if service is not None:
        return check_text(service, "service", max_len=200)
    for key in SERVICE_LABELS:
        if labels.get(key):
            return labels[key][:200]
    return None


@dataclass(frozen=True)
class SeriesSamples:
    """Samples of one series for :meth:`SampleRepository.ingest`: ``ts`` in Unix seconds (or datetime64)."""

    name: str | None
    labels: Mapping[str, str]
    ts: Sequence[float] | npt.NDArray[Any]
    values: Sequence[float] | npt.NDArray[Any]
    service: str | None = None


class SeriesRepository(Repository):
    def upsert(self, tenant: str, name: str | None, labels: Mapping[str, str] | None = None, *,
               service: str | None = None) -> SeriesRecord:
        """The series, created when new (idempotent). An explicit ``service`` replaces the stored one."""
        n, lab = _identity(name, labels, "series")
        svc = _service(lab, service)
        with self._ctx.write() as s:
            t = self._tenant(s, tenant)
            (sid,) = self._resolve(s, t, [(n, lab, svc)])
            row = s.get(Series, sid)
            assert row is not None
            if service is not None and row.service != svc:
                row.service = svc
                s.flush()
            return to_record(SeriesRecord, row)

    def resolve(self, tenant: str, items: Sequence[tuple[str | None, Mapping[str, str]]]) -> list[int]:
        """Ids of many series by ``(name, labels)``, creating the missing ones: what ingest calls per batch."""
        prepared = []
        for i, (name, labels) in enumerate(items):
            n, lab = _identity(name, labels, f"series {i}")
            prepared.append((n, lab, _service(lab, None)))
        with self._ctx.write() as s:
            return self._resolve(s, self._tenant(s, tenant), prepared)

    def _resolve(self, s: Session, tenant: str, items: Sequence[tuple[str, dict[str, str], str | None]]) -> list[int]:
        keys = [series_key(n, lab) for n, lab, _ in items]
        self._ctx.check_cache_age()
        cache = self._ctx.series_ids
        resolved: dict[str, int] = {}
        for k in keys:
            hit = cache.get((tenant, k))
            if hit is not None:
                resolved[k] = hit
        missing = sorted(set(keys) - set(resolved))
        if missing:
            found = self._lookup(s, tenant, missing)
            new = [k for k in dict.fromkeys(keys) if k not in found and k not in resolved]  # in input order
            if new:
                by_key = {k: it for k, it in zip(keys, items, strict=True)}
                now = self._now()
                rows = [{"tenant_id": tenant, "name": by_key[k][0], "labels": by_key[k][1], "key": k,
                         "service": by_key[k][2], "created_at": now} for k in new]
                for part in chunks(rows, 500):  # one multi-row INSERT per chunk; a concurrent writer's rows are
                    stmt = (self._ctx.insert(Series.__table__).values(part)  # skipped and looked up below
                            .on_conflict_do_nothing(index_elements=["tenant_id", "key"])
                            .returning(Series.id, Series.key))
                    found.update({str(key): int(sid) for sid, key in s.execute(stmt)})
                raced = [k for k in new if k not in found]
                if raced:
                    found.update(self._lookup(s, tenant, raced))
            for k, sid in found.items():
                self._ctx.remember_series(tenant, k, sid)
            resolved.update(found)
        return [resolved[k] for k in keys]

    @staticmethod
    def _lookup(s: Session, tenant: str, keys: list[str]) -> dict[str, int]:
        found: dict[str, int] = {}
        for part in chunks(keys):
            for sid, key in s.execute(select(Series.id, Series.key).where(Series.tenant_id == tenant,
                                                                          Series.key.in_(part))):
                found[key] = int(sid)
        return found

    def get(self, tenant: str, series_id: int) -> SeriesRecord:
        sid = check_int(series_id, "series_id")
        with self._ctx.read() as s:
            t = self._tenant(s, tenant)
            row = s.scalar(select(Series).where(Series.tenant_id == t, Series.id == sid))
            if row is None:
                raise NotFoundError("series", sid, t)
            return to_record(SeriesRecord, row)

    def get_many(self, tenant: str, series_ids: Iterable[int]) -> dict[int, SeriesRecord]:
        """The tenant's series among ``series_ids``, by id, in one query per 500 ids (ids of other tenants or of no
        series are left out, not an error: a list endpoint shows what still exists)."""
        ids = sorted({check_int(i, "series_id") for i in series_ids})
        out: dict[int, SeriesRecord] = {}
        with self._ctx.read() as s:
            t = self._tenant(s, tenant)
            cols = Series.__table__.c
            for part in chunks(ids):
                q = select(cols.id, cols.name, cols.labels, cols.service, cols.created_at, cols.stale_since).where(
                    cols.tenant_id == t, cols.id.in_(part))
                for sid, name, labels, service, created_at, stale_since in s.execute(q):
                    out[int(sid)] = SeriesRecord(id=sid, tenant=t, name=name, labels=labels, service=service,
                                                 created_at=created_at, stale_since=stale_since)
        return out

    def find(self, tenant: str, name: str | None, labels: Mapping[str, str] | None = None) -> SeriesRecord | None:
        """The series with exactly this name and labels, or ``None``."""
        n, lab = _identity(name, labels, "series")
        with self._ctx.read() as s:
            t = self._tenant(s, tenant)
            row = s.scalar(select(Series).where(Series.tenant_id == t, Series.key == series_key(n, lab)))
            return None if row is None else to_record(SeriesRecord, row)

    def list(self, tenant: str, *, name: str | None = None, service: str | None = None,
             match: Mapping[str, str] | None = None, limit: int = 1000, offset: int = 0) -> list[SeriesRecord]:
        """Series by id, filtered by metric name, service and label equality (``match``)."""
        n = self._limit(limit)
        skip = check_int(offset, "offset", minimum=0)
        with self._ctx.read() as s:
            t = self._tenant(s, tenant)
            q = select(Series).where(Series.tenant_id == t)
            if name is not None:
                q = q.where(Series.name == check_text(name, "name"))
            if service is not None:
                q = q.where(Series.service == check_text(service, "service", max_len=200))
            for key, value in _identity("x", match, "match")[1].items():
                q = q.where(Series.labels[key].as_string() == value)
            rows = s.scalars(q.order_by(Series.id).limit(n).offset(skip))
            return [to_record(SeriesRecord, r) for r in rows]

    def services(self, tenant: str) -> builtins.list[str]:
        with self._ctx.read() as s:
            t = self._tenant(s, tenant)
            q = select(Series.service).where(Series.tenant_id == t, Series.service.is_not(None)).distinct()
            return sorted(str(v) for v in s.scalars(q))

    def mark_stale(self, tenant: str, series_id: int, since: float | None) -> SeriesRecord:
        """Mark the series stale since ``since`` (``None``: fresh again)."""
        when = None if since is None else check_time(since, "since")
        with self._ctx.write() as s:
            t = self._tenant(s, tenant)
            (sid,) = self._own_series(s, t, [series_id])
            s.execute(update(Series).where(Series.id == sid).values(stale_since=when))
            row = s.get(Series, sid)
            assert row is not None
            s.refresh(row)
            return to_record(SeriesRecord, row)

    def delete(self, tenant: str, series_id: int) -> None:
        """Delete the series with its samples, anomalies, forecasts, feedback and model states."""
        with self._ctx.write() as s:
            t = self._tenant(s, tenant)
            (sid,) = self._own_series(s, t, [series_id])
            s.execute(delete(Sample).where(Sample.series_id == sid))  # samples have no foreign key to cascade
            s.execute(delete(Series).where(Series.id == sid))
        self._ctx.forget()


def _ms_array(ts: object, where: str) -> npt.NDArray[np.int64]:
    arr = np.asarray(ts)
    if arr.ndim != 1:
        raise DataError(f"timestamps must be one-dimensional, got shape {arr.shape}", where=where, column="ts")
    if np.issubdtype(arr.dtype, np.datetime64):
        if np.isnat(arr).any():
            raise DataError("a timestamp is NaT", where=where, row=int(np.flatnonzero(np.isnat(arr))[0]),
                            column="ts")
        return arr.astype("datetime64[ms]").astype(np.int64)
    if arr.dtype.kind not in "iuf":  # text, objects, booleans: find the first value that is not a time
        items = list(ts)  # type: ignore[call-overload]
        for i, v in enumerate(items):
            if not _is_number(v):
                raise DataError(f"{v!r} is not a time in Unix seconds", where=where, row=i, column="ts")
        arr = np.asarray([float(v) for v in items])
    sec = arr.astype(np.float64)
    finite = np.isfinite(sec)
    if not finite.all():
        raise DataError("a timestamp is not finite", where=where, row=int(np.flatnonzero(~finite)[0]), column="ts")
    return np.rint(sec * 1000.0).astype(np.int64)


def _pg_array(items: Iterable[str]) -> str:
    return "{" + ",".join(items) + "}"


def _is_number(v: object) -> bool:
    return isinstance(v, int | float | np.number) and not isinstance(v, bool | np.bool_)


def _value_array(values: object, n: int, where: str) -> FloatArray:
    arr = np.asarray(values)
    if arr.ndim != 1 or arr.shape[0] != n:
        raise DataError(f"{n} timestamps but values of shape {arr.shape}", where=where, column="value")
    if arr.dtype.kind not in "fiu":  # text, objects, booleans: None is NaN, anything else must be a number
        items = list(values)  # type: ignore[call-overload]
        for i, v in enumerate(items):
            if v is not None and not _is_number(v):
                raise DataError(f"{v!r} is not a number", where=where, row=i, column="value")
        arr = np.asarray([np.nan if v is None else float(v) for v in items])
    return arr.astype(np.float64)


class SampleRepository(Repository):
    def insert(self, tenant: str, series_id: int, ts: Sequence[float] | npt.NDArray[Any],
               values: Sequence[float] | npt.NDArray[Any]) -> int:
        """Store samples of one series; returns how many were new."""
        ms = _ms_array(ts, f"series {series_id}")
        vals = _value_array(values, ms.shape[0], f"series {series_id}")
        with self._ctx.write() as s:
            t = self._tenant(s, tenant)
            (sid,) = self._own_series(s, t, [series_id])
            return self._insert(s, np.full(ms.shape[0], sid, dtype=np.int64), ms, vals)

    def insert_many(self, tenant: str, series_ids: Sequence[int] | npt.NDArray[Any],
                    ts: Sequence[float] | npt.NDArray[Any], values: Sequence[float] | npt.NDArray[Any]) -> int:
        """Store samples of many series, as three columns; returns how many were new."""
        ms = _ms_array(ts, "samples")
        vals = _value_array(values, ms.shape[0], "samples")
        ids = np.asarray(series_ids)
        if ids.shape != ms.shape or (ids.size and ids.dtype.kind not in "iu"):
            raise DataError(f"series ids must be {ms.shape[0]} integers, got {ids.dtype} of shape {ids.shape}",
                            where="samples", column="series_id")
        ids = ids.astype(np.int64)
        with self._ctx.write() as s:
            t = self._tenant(s, tenant)
            self._own_series(s, t, np.unique(ids).tolist())
            return self._insert(s, ids, ms, vals)

    def ingest(self, tenant: str, batches: Iterable[SeriesSamples]) -> IngestResult:
        """Resolve (or create) each batch's series and store its samples, all in one transaction: when this
        returns, every sample is committed. Series seen before are found by their raw labels in a cache, so a
        steady stream of known series costs no lookups."""
        items = list(batches)
        if not items:
            return IngestResult(0, 0, 0)
        self._ctx.check_cache_age()
        raw = self._ctx.raw_series
        sids: list[int | None] = []
        keys: list[Any] = []
        counts: list[int] = []
        for i, b in enumerate(items):
            if not isinstance(b, SeriesSamples):
                raise DataError(f"expected SeriesSamples, got {type(b).__name__}", where=f"series {i}")
            try:
                rk: Any = (tenant, b.name, tuple(b.labels.items()), b.service)  # same labels, same order: a hit
                sid = raw.get(rk)
            except (TypeError, AttributeError):  # unhashable labels: checked below
                rk, sid = None, None
            keys.append(rk)
            sids.append(sid)
            n = len(b.ts)
            if len(b.values) != n:
                raise DataError(f"{n} timestamps but {len(b.values)} values", where=f"series {i}", column="value")
            counts.append(n)
        bounds = np.cumsum(counts)
        try:
            ms_all = _ms_array(list(chain.from_iterable(b.ts for b in items)), "samples")
            vals_all = _value_array(list(chain.from_iterable(b.values for b in items)), int(bounds[-1]), "samples")
        except DataError as exc:  # name the series and its row, not the position in the whole request
            if exc.row is None:
                raise
            i = int(np.searchsorted(bounds, exc.row, side="right"))
            row = exc.row - (int(bounds[i - 1]) if i else 0)
            message = str(exc).split(": ", 1)[-1]
            raise DataError(message, where=f"series {i}", row=row, column=exc.column) from None
        todo = [i for i, sid in enumerate(sids) if sid is None]
        identities = []
        for i in todo:
            name, lab = _identity(items[i].name, items[i].labels, f"series {i}")
            identities.append((name, lab, _service(lab, items[i].service)))
        with self._ctx.write() as s:
            t = self._tenant(s, tenant)
            if todo:
                found = SeriesRepository(self._ctx)._resolve(s, t, identities)
                for i, sid in zip(todo, found, strict=True):
                    sids[i] = sid
                    if keys[i] is not None and t == tenant:
                        self._ctx.remember_raw(keys[i], sid)
            ids = np.repeat(np.asarray(sids, dtype=np.int64), counts)
            inserted = self._insert(s, ids, ms_all, vals_all)
        return IngestResult(series=len(set(sids)), samples=int(ms_all.shape[0]), inserted=inserted)

    def _insert(self, s: Session, ids: npt.NDArray[np.int64], ms: npt.NDArray[np.int64], vals: FloatArray) -> int:
        if ids.shape[0] == 0:
            return 0
        order = np.lexsort((ms, ids))  # key order: fewer page splits, and duplicates side by side
        ids, ms, vals = ids[order], ms[order], vals[order]
        first = np.ones(ids.shape[0], dtype=bool)
        first[1:] = (ids[1:] != ids[:-1]) | (ms[1:] != ms[:-1])  # a sample twice in one call: the first wins
        ids, ms, vals = ids[first], ms[first], vals[first]
        conn = s.connection()
        inserted = 0
        if self._ctx.db.dialect == "postgresql":
            sql = ("INSERT INTO samples (series_id, ts, value) SELECT * FROM unnest(%s::bigint[], %s::bigint[], "
                   "%s::float8[]) ON CONFLICT DO NOTHING")
            for i in range(0, ids.shape[0], _PG_BATCH):
                j = i + _PG_BATCH
                # arrays as text literals: joined in C, several times faster than dumping list items one by one
                params = (_pg_array(map(str, ids[i:j].tolist())), _pg_array(map(str, ms[i:j].tolist())),
                          _pg_array(map(repr, vals[i:j].tolist())))  # repr: nan, inf are valid float8 input
                inserted += int(conn.exec_driver_sql(sql, params).rowcount)
        else:
            sql = "INSERT INTO samples (series_id, ts, value) VALUES (?, ?, ?) ON CONFLICT DO NOTHING"
            for i in range(0, ids.shape[0], _SQLITE_BATCH):
                j = i + _SQLITE_BATCH
                rows = list(zip(ids[i:j].tolist(), ms[i:j].tolist(), vals[i:j].tolist(), strict=True))
                inserted += int(conn.exec_driver_sql(sql, rows).rowcount)
        return inserted

    def read(self, tenant: str, series_id: int, start: float | None = None, end: float | None = None,
             limit: int | None = None) -> Samples:
        """Samples with ``start <= ts <= end`` in time order (the last ``limit`` when given)."""
        with self._ctx.read() as s:
            t = self._tenant(s, tenant)
            (sid,) = self._own_series(s, t, [series_id])
            q = select(Sample.ts, Sample.value).where(Sample.series_id == sid)
            if start is not None:
                q = q.where(Sample.ts >= to_ms(check_time(start, "start")))
            if end is not None:
                q = q.where(Sample.ts <= to_ms(check_time(end, "end")))
            if limit is not None:
                q = q.order_by(Sample.ts.desc()).limit(self._limit(limit, 10_000_000))
            else:
                q = q.order_by(Sample.ts)
            rows = list(s.execute(q).all())
        if limit is not None:
            rows.reverse()
        ts = np.fromiter((r[0] for r in rows), dtype=np.float64, count=len(rows)) / 1000.0
        vals = np.fromiter((np.nan if r[1] is None else r[1] for r in rows), dtype=np.float64, count=len(rows))
        return Samples(series_id=sid, ts=ts, values=vals)

    def frame(self, tenant: str, series_ids: Sequence[int], start: float | None = None, end: float | None = None,
              columns: Sequence[str] | None = None) -> Frame:
        """A :class:`~opsmind.core.Frame` of several series on the union of their timestamps (NaN where a series
        has no sample). Columns are the metric names (the full selectors when names repeat) unless given."""
        if isinstance(series_ids, str | bytes) or not isinstance(series_ids, Sequence) or not series_ids:
            raise DataError("give at least one series id", column="series_ids")
        if columns is not None and len(columns) != len(series_ids):
            raise DataError(f"{len(series_ids)} series but {len(columns)} column names", column="columns")
        with self._ctx.read() as s:
            t = self._tenant(s, tenant)
            ids = self._own_series(s, t, series_ids)
            meta = {r.id: to_record(SeriesRecord, r) for r in s.scalars(select(Series).where(Series.id.in_(ids)))}
        parts = [self.read(t, sid, start, end) for sid in ids]
        if columns is None:
            names = [meta[i].name for i in ids]
            columns = names if len(set(names)) == len(names) else [meta[i].selector for i in ids]
        grid = np.unique(np.concatenate([p.ts for p in parts]))
        if grid.shape[0] == 0:
            raise DataError("no samples in the requested range", where=", ".join(str(i) for i in ids))
        values = np.full((grid.shape[0], len(parts)), np.nan)
        for j, p in enumerate(parts):
            values[np.searchsorted(grid, p.ts), j] = p.values
        stamps = np.rint(grid * 1000.0).astype(np.int64).astype("datetime64[ms]").astype("datetime64[ns]")
        return Frame(stamps, values, tuple(columns), name=",".join(str(i) for i in ids))

    def count(self, tenant: str, series_id: int) -> int:
        with self._ctx.read() as s:
            t = self._tenant(s, tenant)
            (sid,) = self._own_series(s, t, [series_id])
            return int(s.scalar(select(func.count()).select_from(Sample).where(Sample.series_id == sid)) or 0)

    def last(self, tenant: str, series_id: int) -> tuple[float, float] | None:
        """The latest ``(ts, value)`` of the series, or ``None`` when it has no samples."""
        with self._ctx.read() as s:
            t = self._tenant(s, tenant)
            (sid,) = self._own_series(s, t, [series_id])
            row = s.execute(select(Sample.ts, Sample.value).where(Sample.series_id == sid)
                            .order_by(Sample.ts.desc()).limit(1)).first()
        if row is None:
            return None
        return row[0] / 1000.0, (np.nan if row[1] is None else float(row[1]))

    def last_many(self, tenant: str, series_ids: Iterable[int]) -> dict[int, tuple[float, float]]:
        """The latest ``(ts, value)`` of each of the series that has samples, in one query per 500 ids (each series
        an index seek for its newest sample, as :meth:`last` does). ``NotFoundError`` for an id that is not one of
        the tenant's series."""
        with self._ctx.read() as s:
            t = self._tenant(s, tenant)
            ids = sorted(set(self._own_series(s, t, series_ids)))
            newest = Sample.__table__.alias("newest")
            rows: builtins.list[tuple[int, int, float | None]] = []
            for part in chunks(ids):
                latest = (select(func.max(newest.c.ts)).where(newest.c.series_id == Series.id)
                          .correlate(Series).scalar_subquery())
                q = (select(Sample.series_id, Sample.ts, Sample.value).select_from(Series)
                     .join(Sample, (Sample.series_id == Series.id) & (Sample.ts == latest))
                     .where(Series.id.in_(part)))
                rows += [(int(sid), int(ts), v) for sid, ts, v in s.execute(q)]
        return {int(sid): (ts / 1000.0, np.nan if v is None else float(v)) for sid, ts, v in rows}

    def delete_before(self, tenant: str, series_id: int, before: float) -> int:
        """Delete the series' samples older than ``before`` (Unix seconds); returns how many."""
        cutoff = to_ms(check_time(before, "before"))
        with self._ctx.write() as s:
            t = self._tenant(s, tenant)
            (sid,) = self._own_series(s, t, [series_id])
            return rowcount(s.execute(delete(Sample).where(Sample.series_id == sid, Sample.ts < cutoff)))
