"""What every repository shares: the transaction context, the tenant check, series ownership, dialect upserts."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar, cast

from pydantic import BaseModel
from sqlalchemy import CursorResult, Result, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from opsmind.core.errors import DataError
from opsmind.store.columns import check_int, check_slug
from opsmind.store.db import Database
from opsmind.store.errors import NotFoundError
from opsmind.store.models import Series, Tenant

R = TypeVar("R", bound=BaseModel)

_CHUNK = 500  # ids per IN (...) list


class Context:
    """The database, an optional transaction the repositories join, the clock, and caches of known tenants and
    series (shared by a store and its transaction views; cleared when a transaction fails)."""

    def __init__(self, db: Database, now: Callable[[], float], cache_size: int, cache_ttl_s: float) -> None:
        self.db = db
        self.now = now
        self.cache_size = cache_size
        self.cache_ttl_s = cache_ttl_s
        self._cache_born = [time.monotonic()]  # shared with transaction views
        self.session: Session | None = None
        self.tenants: set[str] = set()
        self.series_ids: dict[tuple[str, str], int] = {}
        self.series_owner: dict[int, str] = {}
        self.raw_series: dict[Any, int] = {}  # (tenant, name, sorted raw labels, service) -> id, for ingest

    def bound(self, session: Session) -> Context:
        view = Context.__new__(Context)
        view.__dict__.update(self.__dict__)
        view.session = session
        return view

    def check_cache_age(self) -> None:
        """Forget the caches when older than ``cache_ttl_s`` (another process may have deleted a series)."""
        now = time.monotonic()
        if now - self._cache_born[0] > self.cache_ttl_s:
            self.forget()
            self._cache_born[0] = now

    def forget(self) -> None:
        self.tenants.clear()
        self.series_ids.clear()
        self.series_owner.clear()
        self.raw_series.clear()

    def remember_raw(self, key: Any, series_id: int) -> None:
        if len(self.raw_series) >= self.cache_size:
            self.raw_series.clear()
        if self.cache_size > 0:
            self.raw_series[key] = series_id

    def remember_series(self, tenant: str, key: str | None, series_id: int) -> None:
        if len(self.series_owner) >= self.cache_size:
            self.series_ids.clear()
            self.series_owner.clear()
        if self.cache_size <= 0:
            return
        if key is not None:
            self.series_ids[(tenant, key)] = series_id
        self.series_owner[series_id] = tenant

    @contextmanager
    def write(self) -> Iterator[Session]:
        if self.session is not None:
            yield self.session
            return
        try:
            with self.db.writer() as session:
                yield session
        except BaseException:
            self.forget()
            raise

    @contextmanager
    def read(self) -> Iterator[Session]:
        if self.session is not None:
            yield self.session
            return
        with self.db.reader() as session:
            yield session

    def insert(self, table: Any) -> Any:
        """``INSERT`` with ``on_conflict_do_nothing``/``on_conflict_do_update`` for this database."""
        if self.db.dialect == "postgresql":
            return postgresql.insert(table)
        return sqlite.insert(table)


def rowcount(result: Result[Any]) -> int:
    """Rows an INSERT/UPDATE/DELETE touched."""
    return int(cast(CursorResult[Any], result).rowcount)


def chunks(items: list[Any], size: int = _CHUNK) -> Iterator[list[Any]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


def to_record(cls: type[R], row: object, **override: Any) -> R:
    """A record from an ORM row: fields by name, ``tenant`` from ``tenant_id``, ``override`` wins."""
    data: dict[str, Any] = {}
    for name in cls.model_fields:
        if name in override:
            data[name] = override[name]
            continue
        attr = "tenant_id" if name == "tenant" else name
        if hasattr(row, attr):
            data[name] = getattr(row, attr)
    return cls.model_validate(data)


class Repository:
    """Base of the repositories: every public method takes the tenant first and touches only its rows."""

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx

    def _now(self) -> float:
        return float(self._ctx.now())

    def _tenant(self, session: Session, tenant: object) -> str:
        """The checked tenant id; ``NotFoundError`` when no such tenant exists."""
        t = check_slug(tenant, "tenant")
        if t in self._ctx.tenants:
            return t
        if session.get(Tenant, t) is None:
            raise NotFoundError("tenant", t)
        self._ctx.tenants.add(t)
        return t

    def _own_series(self, session: Session, tenant: str, series_ids: Iterable[object]) -> list[int]:
        """The ids, checked to be integers of this tenant's series (``NotFoundError`` for the first that is not)."""
        ids = [check_int(s, "series_id") for s in series_ids]
        self._ctx.check_cache_age()
        owner = self._ctx.series_owner
        unknown = sorted({i for i in ids if owner.get(i) != tenant})
        for part in chunks(unknown):
            found = set(session.scalars(select(Series.id).where(Series.tenant_id == tenant, Series.id.in_(part))))
            for sid in part:
                if sid not in found:
                    raise NotFoundError("series", sid, tenant)
                self._ctx.remember_series(tenant, None, sid)
        return ids

    @staticmethod
    def _limit(limit: object, maximum: int = 100_000) -> int:
        n = check_int(limit, "limit", minimum=1)
        if n > maximum:
            raise DataError(f"at most {maximum} rows per call, got {n}", column="limit")
        return n
