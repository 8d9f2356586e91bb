"""What the store-using commands (``opsmind token``, ``opsmind playbook``) share: the ``--db``, ``--tenant`` and
``--config`` options, the one-line error exit, and opening the store they name."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

__all__ = ["ConfigOpt", "DbOpt", "TenantOpt", "fail", "open_store", "settings_from"]

DbOpt = Annotated[str | None, typer.Option("--db", help="Store: a SQLite file or a database URL (default: the "
                                           "configuration's store, else opsmind.db here).")]
TenantOpt = Annotated[str | None, typer.Option("--tenant", help="Tenant (default: the configuration's).")]
ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="opsmind YAML configuration.")]


def fail(message: str, code: int = 2) -> NoReturn:
    """Print ``error: message`` on stderr and exit with ``code``."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def settings_from(config: Path | None) -> Any:
    """The settings of ``--config`` (defaults and ``OPSMIND_*`` variables without one)."""
    from opsmind.config import load_settings

    return load_settings(config)


def open_store(settings: Any, db: str | None) -> Any:
    """The store ``--db`` names (a SQLite file or a URL), else the configuration's."""
    from opsmind.store import Store

    if db is None:
        return Store.open(settings.store)
    return Store.open(db if "://" in db else f"sqlite:///{Path(db).resolve()}")
