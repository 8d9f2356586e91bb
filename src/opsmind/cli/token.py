"""``opsmind token create|list|revoke``: API tokens for the HTTP API (``Authorization: Bearer <token>``).

A token belongs to one tenant and has scopes (``read`` < ``write`` < ``admin``). The secret is printed once, by
``create``; the store keeps only its hash, so a lost token is revoked and replaced, never recovered.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from opsmind.cli._store import ConfigOpt, DbOpt, TenantOpt, fail, open_store, settings_from
from opsmind.core.errors import ConfigError, OpsmindError
from opsmind.sources.timeparse import parse_duration

token_app = typer.Typer(help="API tokens: create (the secret is shown once), list, revoke.", no_args_is_help=True)

_console = Console(width=140)


class ScopeName(StrEnum):
    read = "read"
    write = "write"
    admin = "admin"


JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]


def _lifetime(text: str) -> float:
    """Seconds in ``--expires-in`` (``90s``, ``15m``, ``12h``, ``30d``, ``2w``, ``1h30m`` or a bare number).

    >>> _lifetime("30d"), _lifetime("90")
    (2592000.0, 90.0)
    """
    try:
        value = parse_duration(text.strip().lower())
    except ConfigError:
        raise typer.BadParameter(f"{text!r} is not a duration (e.g. 90s, 15m, 12h, 30d, 2w)") from None
    if not 0 < value < float("inf"):
        raise typer.BadParameter(f"{text!r}: a duration must be positive")
    return value


def _open(config: Path | None, db: str | None, tenant: str | None) -> tuple[Any, str]:
    settings = settings_from(config)
    return open_store(settings, db), tenant or settings.tenant


def _when(ts: float | None) -> str:
    return "-" if ts is None else datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M UTC")


@token_app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="What the token is for, e.g. grafana, prometheus-remote-write.")],
    scope: Annotated[list[ScopeName] | None, typer.Option("--scope", "-s", help="Scope (repeatable): read, write, "
                                                         "admin. Default: read.")] = None,
    expires_in: Annotated[str | None, typer.Option("--expires-in", help="Lifetime, e.g. 30d, 12h (default: "
                                                   "never).")] = None,
    tenant: TenantOpt = None, config: ConfigOpt = None, db: DbOpt = None, as_json: JsonOpt = False,
) -> None:
    """Create a token and print its secret (shown this once)."""
    scopes = [s.value for s in (scope or [ScopeName.read])]
    lifetime = _lifetime(expires_in) if expires_in is not None else None
    try:
        store, t = _open(config, db, tenant)
        with store:
            store.tenants.ensure(t)
            record, secret = store.tokens.create(t, name, scopes,
                                                 expires_at=None if lifetime is None else time.time() + lifetime)
    except OpsmindError as exc:
        fail(str(exc))
    if as_json:
        typer.echo(json.dumps({**record.model_dump(mode="json"), "secret": secret}, sort_keys=True))
        return
    typer.echo(secret)
    typer.echo(f"token {record.id} ({record.name}) for tenant {record.tenant}: scopes "
               f"{', '.join(sorted(record.scopes))}, expires {_when(record.expires_at)}. "
               "Keep the secret above: it is not shown again.", err=True)


@token_app.command("list")
def list_(tenant: TenantOpt = None, config: ConfigOpt = None, db: DbOpt = None, as_json: JsonOpt = False) -> None:
    """List the tenant's tokens (never their secrets)."""
    try:
        store, t = _open(config, db, tenant)
        with store:
            tokens = store.tokens.list(t)
    except OpsmindError as exc:
        fail(str(exc))
    if as_json:
        typer.echo(json.dumps([r.model_dump(mode="json") for r in tokens], sort_keys=True))
        return
    table = Table(title=f"API tokens of tenant {t}")
    for col in ("id", "name", "prefix", "scopes", "created", "expires", "last used", "state"):
        table.add_column(col)
    now = time.time()
    for r in tokens:
        state = "revoked" if r.revoked_at is not None else "expired" if r.expires_at is not None and \
            r.expires_at <= now else "active"
        table.add_row(str(r.id), r.name, r.prefix + "...", ",".join(sorted(r.scopes)), _when(r.created_at),
                      _when(r.expires_at), _when(r.last_used_at), state)
    _console.print(table)


@token_app.command("revoke")
def revoke(token_id: Annotated[int, typer.Argument(help="Token id (from `opsmind token list`).")],
           tenant: TenantOpt = None, config: ConfigOpt = None, db: DbOpt = None) -> None:
    """Revoke a token: requests with it are refused from now on."""
    try:
        store, t = _open(config, db, tenant)
        with store:
            record = store.tokens.revoke(t, token_id)
    except OpsmindError as exc:
        fail(str(exc))
    typer.echo(f"revoked token {record.id} ({record.name}) of tenant {record.tenant} at {_when(record.revoked_at)}")
