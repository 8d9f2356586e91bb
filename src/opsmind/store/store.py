"""The store: one object with a repository per table family, each call its own transaction unless made inside
:meth:`Store.transaction`.

>>> store = Store.open("sqlite://")                   # in memory; a file or postgresql+psycopg://... in real use
>>> _ = store.tenants.ensure("acme")
>>> sid = store.series.upsert("acme", "http_requests", {"service": "checkout"}).id
>>> store.samples.insert("acme", sid, [0.0, 15.0, 30.0], [1.0, 2.0, 3.0])
3
>>> store.samples.insert("acme", sid, [0.0, 15.0, 30.0], [1.0, 2.0, 3.0])   # a replay adds nothing
0
>>> with store.transaction() as tx:                    # both or neither
...     a = tx.anomalies.record("acme", sid, 30.0, 0.97, severity="high")
...     _ = tx.audit.record("acme", "engine", "anomaly.recorded", target=str(a.id))
>>> store.anomalies.list("acme")[0].severity
'high'
>>> store.close()
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import TracebackType

from sqlalchemy import text

from opsmind.store._base import Context
from opsmind.store.db import Database, StoreSettings
from opsmind.store.findings import (
    AnomalyRepository,
    FeedbackRepository,
    ForecastRepository,
    RecommendationRepository,
)
from opsmind.store.incidents import IncidentRepository
from opsmind.store.model_states import ModelStateRepository
from opsmind.store.retention import RetentionRepository
from opsmind.store.schema import current_revision, migrate, require_head
from opsmind.store.series import SampleRepository, SeriesRepository
from opsmind.store.tenancy import AuditRepository, TenantRepository, TokenRepository

__all__ = ["Store"]


class Store:
    """The opsmind database. Repositories: ``tenants``, ``tokens``, ``series``, ``samples``, ``anomalies``,
    ``forecasts``, ``recommendations``, ``incidents``, ``feedback``, ``models`` (model states), ``audit``,
    ``retention``. Every method takes the tenant first and sees only that tenant's rows.

    ``now`` is the clock used for bookkeeping times (``created_at``, audit times, token use); tests pass their own.
    A store is safe to share between threads; in a forked worker process open a new one.
    """

    tenants: TenantRepository
    tokens: TokenRepository
    series: SeriesRepository
    samples: SampleRepository
    anomalies: AnomalyRepository
    forecasts: ForecastRepository
    recommendations: RecommendationRepository
    incidents: IncidentRepository
    feedback: FeedbackRepository
    models: ModelStateRepository
    audit: AuditRepository
    retention: RetentionRepository

    def __init__(self, settings: StoreSettings | str | None = None, *, now: Callable[[], float] = time.time) -> None:
        self.db = Database(settings)
        self._ctx = Context(self.db, now, self.db.settings.series_cache_size, self.db.settings.cache_ttl_s)
        self._bind(self._ctx)

    @classmethod
    def open(cls, settings: StoreSettings | str | None = None, *, upgrade: bool = True,
             now: Callable[[], float] = time.time) -> Store:
        """A store whose schema is at head: migrated when ``upgrade``, else checked (``StoreError`` if behind)."""
        store = cls(settings, now=now)
        try:
            if upgrade:
                migrate(store.db)
            else:
                require_head(store.db)
        except BaseException:
            store.close()
            raise
        return store

    def _bind(self, ctx: Context) -> None:
        self.tenants = TenantRepository(ctx)
        self.tokens = TokenRepository(ctx)
        self.series = SeriesRepository(ctx)
        self.samples = SampleRepository(ctx)
        self.anomalies = AnomalyRepository(ctx)
        self.forecasts = ForecastRepository(ctx)
        self.recommendations = RecommendationRepository(ctx)
        self.incidents = IncidentRepository(ctx)
        self.feedback = FeedbackRepository(ctx)
        self.models = ModelStateRepository(ctx)
        self.audit = AuditRepository(ctx)
        self.retention = RetentionRepository(ctx)

    @property
    def url(self) -> str:
        """The database URL, password hidden."""
        return self.db.describe()

    @property
    def dialect(self) -> str:
        return self.db.dialect

    def ping(self) -> None:
        """Raise ``StoreError`` when the database cannot be reached (for health checks)."""
        with self.db.reader() as session:
            session.execute(text("SELECT 1"))

    def revision(self) -> str | None:
        """The schema revision the database is at."""
        return current_revision(self.db)

    @contextmanager
    def transaction(self) -> Iterator[Store]:
        """A view of this store whose calls share one write transaction, committed when the block ends and
        rolled back (every call in it) on an exception. Nested calls join the outer transaction."""
        if self._ctx.session is not None:
            yield self
            return
        try:
            with self.db.writer() as session:
                view = Store.__new__(Store)
                view.db = self.db
                view._ctx = self._ctx.bound(session)
                view._bind(view._ctx)
                yield view
        except BaseException:
            self._ctx.forget()
            raise

    def close(self) -> None:
        self.db.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
