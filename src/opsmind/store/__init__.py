"""The opsmind store: SQLAlchemy 2 models and repositories over SQLite (the embedded default, WAL) or
PostgreSQL, with Alembic migrations.

>>> from opsmind.store import Store
>>> with Store.open("sqlite://") as store:
...     _ = store.tenants.ensure("default")
...     store.series.upsert("default", "up", {"job": "api"}).service
'api'

Entry points: :class:`Store` (the repositories), :func:`migrate`/:func:`downgrade`/:func:`schema_diff` (schema),
:class:`StoreSettings`, :func:`default_url` (``opsmind.db`` in the working directory), :class:`RetentionPolicy`,
and the errors :class:`NotFoundError`, :class:`ConflictError`, :class:`AuthError`, :class:`StoreError`.
"""

from __future__ import annotations

from opsmind.store.db import DEFAULT_DB_FILE, Database, StoreSettings, default_url
from opsmind.store.errors import AuthError, ConflictError, NotFoundError, StoreError
from opsmind.store.findings import AnomalyIn, anomalies_from_detection
from opsmind.store.records import (
    AnomalyRecord,
    AuditRecord,
    FeedbackRecord,
    ForecastRecord,
    IncidentAlertRecord,
    IncidentRecord,
    IngestResult,
    ModelStateRecord,
    RecommendationRecord,
    Samples,
    Scope,
    SeriesRecord,
    TenantRecord,
    TokenRecord,
)
from opsmind.store.retention import RetentionPolicy
from opsmind.store.schema import current_revision, downgrade, head_revision, migrate, require_head, schema_diff
from opsmind.store.series import SeriesSamples, series_key
from opsmind.store.store import Store

__all__ = [
    "DEFAULT_DB_FILE",
    "AnomalyIn",
    "AnomalyRecord",
    "AuditRecord",
    "AuthError",
    "ConflictError",
    "Database",
    "FeedbackRecord",
    "ForecastRecord",
    "IncidentAlertRecord",
    "IncidentRecord",
    "IngestResult",
    "ModelStateRecord",
    "NotFoundError",
    "RecommendationRecord",
    "RetentionPolicy",
    "Samples",
    "Scope",
    "SeriesRecord",
    "SeriesSamples",
    "Store",
    "StoreError",
    "StoreSettings",
    "TenantRecord",
    "TokenRecord",
    "anomalies_from_detection",
    "current_revision",
    "default_url",
    "downgrade",
    "head_revision",
    "migrate",
    "require_head",
    "schema_diff",
    "series_key",
]
