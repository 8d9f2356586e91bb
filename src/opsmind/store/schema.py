"""Schema migrations from code: ``migrate(url)`` is ``alembic upgrade head``; ``downgrade``, the current and head
revisions, and :func:`schema_diff` (what ``alembic check`` reports: the differences between the ORM models and
the database, empty when the migrations and the models agree).

A new migration after a model change: ``new_revision(url, "what changed")`` autogenerates it against a database
at head; review the file it writes under ``migrations/versions/``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text

from opsmind.store.db import Database, StoreSettings
from opsmind.store.errors import StoreError
from opsmind.store.models import Base

__all__ = [
    "MIGRATIONS_DIR",
    "current_revision",
    "downgrade",
    "head_revision",
    "migrate",
    "new_revision",
    "require_head",
    "schema_diff",
]

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
_LOCK_KEY = int.from_bytes(b"opsmind", "big")  # the advisory lock id migrations take on PostgreSQL

Target = str | StoreSettings | Database


def _config(db: Database) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", db.url.render_as_string(hide_password=False).replace("%", "%%"))
    return cfg


def _open(target: Target) -> tuple[Database, bool]:
    if isinstance(target, Database):
        return target, False
    return Database(target), True


@contextmanager
def _locked(db: Database) -> Iterator[Connection]:
    """A transaction that holds the migration lock, so processes starting together migrate one after the other
    (the later ones then find the schema at head): SQLite's write lock, a PostgreSQL advisory lock."""
    if db.dialect == "sqlite":
        with db.engine.execution_options(opsmind_begin="IMMEDIATE").begin() as conn:
            yield conn
        return
    with db.engine.begin() as conn:
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
        yield conn


def _run(target: Target, fn: Any, *args: Any) -> None:
    db, owned = _open(target)
    try:
        cfg = _config(db)
        with db._translate(), _locked(db) as conn:
            cfg.attributes["connection"] = conn
            fn(cfg, *args)
    finally:
        if owned:
            db.dispose()


def migrate(target: Target, revision: str = "head") -> str | None:
    """Upgrade the database at ``target`` (a URL, settings or an open :class:`Database`) to ``revision``."""
    _run(target, command.upgrade, revision)
    return current_revision(target)


def downgrade(target: Target, revision: str = "base") -> str | None:
    """Downgrade to ``revision`` (``base``: drop every table the migrations created)."""
    _run(target, command.downgrade, revision)
    return current_revision(target)


def head_revision() -> str:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    head = ScriptDirectory.from_config(cfg).get_current_head()
    if head is None:
        raise StoreError("no migrations found")
    return head


def current_revision(target: Target) -> str | None:
    """The revision the database is at (``None`` for an empty database)."""
    db, owned = _open(target)
    try:
        with db._translate(), db.engine.connect() as conn:
            rev: str | None = MigrationContext.configure(conn).get_current_revision()
            return rev
    finally:
        if owned:
            db.dispose()


def require_head(target: Target) -> None:
    """Raise a ``StoreError`` saying what to run when the database is not at the code's head revision."""
    current, head = current_revision(target), head_revision()
    if current != head:
        raise StoreError(f"database schema is at revision {current or 'none (empty database)'}, this opsmind "
                         f"needs {head}: run the migrations (opsmind.store.migrate(url))")


def schema_diff(target: Target) -> list[Any]:
    """Differences between the ORM metadata and the database (alembic autogenerate's diff; empty = in sync)."""
    db, owned = _open(target)
    try:
        with db._translate(), db.engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"compare_type": True})
            diff: list[Any] = compare_metadata(ctx, Base.metadata)
            return diff
    finally:
        if owned:
            db.dispose()


def new_revision(target: Target, message: str) -> None:
    """Autogenerate a migration for the model changes since head (the database must be at head)."""
    require_head(target)
    _run(target, lambda cfg: command.revision(cfg, message=message, autogenerate=True))
