"""Alembic environment: runs on the connection :func:`opsmind.store.migrate` passes in, or, when started with the
``alembic`` command, on ``sqlalchemy.url`` opened through :class:`opsmind.store.db.Database` (same pragmas)."""

from __future__ import annotations

from alembic import context
from alembic.config import Config
from sqlalchemy.engine import Connection

from opsmind.store.db import Database
from opsmind.store.models import Base

target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copying them
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run(config: Config) -> None:
    if context.is_offline_mode():
        context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=target_metadata,
                          literal_binds=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    db = Database(config.get_main_option("sqlalchemy.url") or "")
    try:
        with db.engine.begin() as conn:
            _run(conn)
    finally:
        db.dispose()


try:
    _config: Config | None = context.config
except AttributeError:  # imported outside a migration run (a doctest collector): nothing to do
    _config = None
if _config is not None:
    run(_config)
