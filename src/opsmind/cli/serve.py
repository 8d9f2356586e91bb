"""``opsmind serve --config FILE``: the engine and the API (with the dashboard) in one process;
``opsmind init [PATH]``: write an annotated example configuration."""

from __future__ import annotations

import logging
import signal
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from opsmind.core import OpsmindError

__all__ = ["init", "serve"]


def _fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


def _dispatcher(settings: object, store: object, telemetry: object) -> object | None:
    """The notifier when anything is configured to notify (Alertmanager, Slack, Teams, e-mail)."""
    from opsmind.config import Settings

    assert isinstance(settings, Settings)
    n = settings.notify
    if settings.alertmanager is None and n.slack_webhook_url is None and n.teams_webhook_url is None \
            and n.email is None:
        return None
    from opsmind.notify import Dispatcher

    return Dispatcher(settings, store, telemetry=telemetry)  # type: ignore[arg-type]


def _quiet_signals() -> None:
    """After its graceful shutdown uvicorn re-raises the signal that stopped it to the handler that was there
    before: make that one do nothing, so the engine and the store are closed and the exit status is 0."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda _sig, _frame: None)


def serve(
    config: Annotated[Path, typer.Option("--config", "-c", help="YAML configuration (see `opsmind init`).")],
    no_engine: Annotated[bool, typer.Option("--no-engine", help="Serve the API only (ingest, webhooks, "
                                            "dashboard); run no analysis.")] = False,
    log_level: Annotated[str, typer.Option("--log-level", help="debug, info, warning or error.")] = "warning",
) -> None:
    """Run the engine (detect, forecast, scale, rightsize, incidents, playbooks) and the API until Ctrl-C.

    One process, one port: the engine pulls from Prometheus or scrapes /metrics endpoints (or analyses what is
    pushed to the API), and the API serves the dashboard, /metrics, remote_write and the Alertmanager webhook."""
    import uvicorn

    from opsmind.api import create_app
    from opsmind.config import load_settings
    from opsmind.engine import Engine
    from opsmind.store import Store
    from opsmind.telemetry import Telemetry

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = load_settings(config)
        store = Store.open(settings.store)
    except OpsmindError as exc:
        _fail(str(exc))
    telemetry = Telemetry()
    engine = None
    try:
        if not no_engine:
            engine = Engine(settings, store, telemetry=telemetry,
                            dispatcher=_dispatcher(settings, store, telemetry))  # type: ignore[arg-type]
        app = create_app(settings, store=store, telemetry=telemetry, engine=engine,  # one remediator for both
                         remediator=engine.remediator if engine is not None else None)
        server = uvicorn.Server(uvicorn.Config(app, host=settings.api.host, port=settings.api.port,
                                               log_level=log_level.lower(), lifespan="on"))
        if engine is not None:
            engine.start()
        _quiet_signals()
        typer.echo(f"opsmind serving on http://{settings.api.host}:{settings.api.port} "
                   f"({len(settings.services)} services, store {store.url})", err=True)
        server.run()  # returns after Ctrl-C or SIGTERM (uvicorn's graceful shutdown), then we stop the engine
    except OpsmindError as exc:
        _fail(str(exc))
    finally:
        if engine is not None:
            engine.stop()
        store.close()


def init(
    path: Annotated[Path, typer.Argument(help="Where to write the configuration.")] = Path("opsmind.yaml"),
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
) -> None:
    """Write an annotated example configuration (every field explained) to PATH."""
    from opsmind.engine.example_config import EXAMPLE_CONFIG

    if path.exists() and not force:
        _fail(f"{path} exists; use --force to overwrite it")
    try:
        path.write_text(EXAMPLE_CONFIG, encoding="utf-8")
    except OSError as exc:
        _fail(f"cannot write {path}: {exc.strerror or exc}")
    typer.echo(f"wrote {path}; edit it, then run: opsmind serve --config {path}")
