"""Connecting: URL checks, the SQLAlchemy engine with SQLite pragmas, and sessions for reads and writes.

SQLite (the embedded default, a file in the working directory) is opened in WAL mode with foreign keys on and
a busy timeout, and write transactions start with ``BEGIN IMMEDIATE`` so concurrent writers (the engine and the
API in two processes) wait for each other instead of failing on a stale snapshot. ``synchronous=NORMAL`` (the
default here) keeps every committed transaction through a crash of the process (``kill -9``); ``FULL`` also
through a power loss, at a cost in write speed. PostgreSQL is reached through psycopg 3
(``postgresql+psycopg://user@host:5432/db``; ``postgresql://`` and ``postgres://`` are taken to mean that).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import URL, Engine, create_engine, event, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

from opsmind.core.errors import ConfigError, OpsmindError
from opsmind.store.errors import ConflictError, StoreError

__all__ = ["DEFAULT_DB_FILE", "Database", "StoreSettings", "default_url", "normalise_url"]

DEFAULT_DB_FILE = "opsmind.db"
Dialect = Literal["sqlite", "postgresql"]


def default_url(directory: Path | str | None = None) -> str:
    """``sqlite:///<directory>/opsmind.db`` (the working directory by default)."""
    base = Path(directory) if directory is not None else Path.cwd()
    return f"sqlite:///{(base / DEFAULT_DB_FILE).resolve()}"


class StoreSettings(BaseModel):
    """Where the store lives and how it connects."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    url: str = Field("", description="Database URL: sqlite:///path.db or postgresql+psycopg://user@host/db; "
                                     "empty means opsmind.db in the working directory.")
    busy_timeout_s: float = Field(10.0, gt=0, le=600, description="How long a writer waits for a lock (SQLite) "
                                                                   "or a connection (both).")
    sqlite_synchronous: Literal["NORMAL", "FULL"] = Field(
        "NORMAL", description="SQLite durability: NORMAL survives a process crash, FULL also a power loss.")
    pool_size: int = Field(5, ge=1, le=100, description="Connections kept open (PostgreSQL).")
    series_cache_size: int = Field(200_000, ge=0, description="Series ids remembered for fast ingest.")
    cache_ttl_s: float = Field(60.0, gt=0, description="Forget remembered series ids this often, so a series "
                                                       "deleted by another process is noticed.")
    echo: bool = Field(False, description="Log every SQL statement.")


def normalise_url(url: str) -> URL:
    """Parse ``url`` and pick the driver; a ``ConfigError`` names what is wrong with it."""
    if not isinstance(url, str) or not url.strip():
        raise ConfigError(f"store url: expected a database URL, got {url!r}")
    text = url.strip()
    if text.startswith("postgres://"):
        text = "postgresql://" + text[len("postgres://"):]
    try:
        parsed = make_url(text)
    except ArgumentError as exc:
        raise ConfigError(f"store url {url!r} is not a database URL (sqlite:///file.db or "
                          f"postgresql+psycopg://user@host/db)") from exc
    backend = parsed.get_backend_name()
    driver = parsed.get_driver_name()
    if backend == "postgresql":
        if driver not in ("psycopg", "psycopg2") or "+" not in parsed.drivername:
            parsed = parsed.set(drivername="postgresql+psycopg")
        if not parsed.database:
            raise ConfigError(f"store url {parsed.render_as_string(hide_password=True)!r} names no database")
    elif backend == "sqlite":
        if driver not in ("pysqlite",):
            raise ConfigError(f"store url {url!r}: SQLite is used through Python's sqlite3 (sqlite:///file.db)")
    else:
        raise ConfigError(f"store url {url!r}: unsupported database {backend!r}; use sqlite or postgresql")
    return parsed


def _first_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _wal(cur: Any, wait_s: float) -> None:
    """``PRAGMA journal_mode=WAL``, retried while the file is locked: switching a new database to WAL takes an
    exclusive lock, and SQLite answers "database is locked" at once, without its busy timeout, to a connection
    that asks while another one is switching it (several processes opening a new store together)."""
    deadline = time.monotonic() + wait_s
    pause = 0.01
    while True:
        try:
            cur.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() + pause > deadline:
                raise
            time.sleep(pause)
            pause = min(2 * pause, 0.2)


class Database:
    """An engine and its session factories; :meth:`writer` and :meth:`reader` give transactions."""

    def __init__(self, settings: StoreSettings | str | None = None) -> None:
        if isinstance(settings, str) or settings is None:
            settings = StoreSettings(url=settings or "")
        self.settings = settings
        self.url = normalise_url(settings.url or default_url())
        self.dialect: Dialect = "sqlite" if self.url.get_backend_name() == "sqlite" else "postgresql"
        self.engine = self._create_engine()
        self._writer = sessionmaker(bind=self.engine.execution_options(opsmind_begin="IMMEDIATE"),
                                    expire_on_commit=False, autoflush=True)
        self._reader = sessionmaker(bind=self.engine, expire_on_commit=False, autoflush=False)

    @property
    def is_memory(self) -> bool:
        return self.dialect == "sqlite" and self.url.database in (None, "", ":memory:")

    def describe(self) -> str:
        return self.url.render_as_string(hide_password=True)

    def _create_engine(self) -> Engine:
        s = self.settings
        if self.dialect == "postgresql":
            return create_engine(self.url, echo=s.echo, pool_size=s.pool_size, max_overflow=s.pool_size,
                                 pool_timeout=s.busy_timeout_s, pool_pre_ping=True,
                                 connect_args={"connect_timeout": max(1, round(s.busy_timeout_s))})
        kwargs: dict[str, Any] = {"connect_args": {"check_same_thread": False, "timeout": s.busy_timeout_s}}
        if self.is_memory:
            kwargs["poolclass"] = StaticPool  # one shared connection, or every connection sees an empty database
        else:
            path = Path(str(self.url.database))
            if not path.parent.exists():
                raise ConfigError(f"store url {self.describe()!r}: directory {path.parent} does not exist")
        engine = create_engine(self.url, echo=s.echo, **kwargs)
        busy_ms = round(s.busy_timeout_s * 1000)
        memory = self.is_memory

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # SQLAlchemy, not the sqlite3 module, decides when to BEGIN
            cur = dbapi_conn.cursor()
            if not memory:
                _wal(cur, s.busy_timeout_s)
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute(f"PRAGMA busy_timeout={busy_ms}")
            cur.execute(f"PRAGMA synchronous={s.sqlite_synchronous}")
            cur.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Any) -> None:
            mode = conn.get_execution_options().get("opsmind_begin", "")
            conn.exec_driver_sql("BEGIN IMMEDIATE" if mode == "IMMEDIATE" else "BEGIN")

        return engine

    @contextmanager
    def writer(self) -> Iterator[Session]:
        """A write transaction: committed when the block ends, rolled back on an exception."""
        with self._translate(), self._writer.begin() as session:
            yield session

    @contextmanager
    def reader(self) -> Iterator[Session]:
        """A read-only transaction (on SQLite it does not take the write lock)."""
        with self._translate(), self._reader.begin() as session:
            yield session

    @contextmanager
    def _translate(self) -> Iterator[None]:
        """Database exceptions as store errors with a one-line message."""
        try:
            yield
        except OpsmindError:
            raise
        except IntegrityError as exc:
            raise ConflictError(f"conflicting write: {_first_line(exc)}") from exc
        except DBAPIError as exc:
            raise StoreError(f"database {self.describe()}: {_first_line(exc)}") from exc
        except SQLAlchemyError as exc:
            raise StoreError(f"database {self.describe()}: {_first_line(exc)}") from exc

    def dispose(self) -> None:
        self.engine.dispose()
