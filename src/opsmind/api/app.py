"""``create_app(settings)``: the FastAPI application (API, /metrics, webhooks, remote_write, dashboard).

>>> from opsmind.config import Settings
>>> from fastapi.testclient import TestClient
>>> app = create_app(Settings.model_validate({"store": {"url": "sqlite://"}}))
>>> with TestClient(app) as client:
...     client.get("/api/v1/health").json()["status"]
'ok'
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import anyio.to_thread
from fastapi import FastAPI

from opsmind import __version__
from opsmind.api import errors
from opsmind.api.exporter import FindingsCollector
from opsmind.api.middleware import RequestMiddleware
from opsmind.api.remediation_views import RemediationHandle
from opsmind.api.routes import API_PREFIX, api_routers, metrics, path_templates
from opsmind.api.state import AppState, EngineLike, IncidentReceiver
from opsmind.config import Settings
from opsmind.remediate import Remediator
from opsmind.store import Store
from opsmind.telemetry import Telemetry

__all__ = ["create_app"]

log = logging.getLogger("opsmind.api")

_DESCRIPTION = """opsmind's API: services, series, anomalies, forecasts, recommendations, incidents, feedback,
ingest (JSON and Prometheus remote_write), the Alertmanager webhook and live events.

Authenticate with `Authorization: Bearer <token>` (`opsmind token create`). Every error answers
`{"error": {"code", "message", "field"}}`. Times are Unix seconds; NaN is `null`."""


def _incident_service(store: Store, settings: Settings, engine: EngineLike | None) -> IncidentReceiver:
    """The engine's incident service when the engine runs in this process (one correlator for both), else one of
    the API's own."""
    shared = getattr(engine, "incidents", None)
    if shared is not None and callable(getattr(shared, "receive", None)):
        own: IncidentReceiver = shared
        return own
    from opsmind.engine.incidents import IncidentService

    service: IncidentReceiver = IncidentService(store, settings)
    return service


def create_app(settings: Settings, *, store: Store | None = None, telemetry: Telemetry | None = None,
               engine: EngineLike | None = None, clock: Callable[[], float] = time.time,
               remediator: Remediator | None = None) -> FastAPI:
    """The application. Opens the store from ``settings.store`` when none is given (and closes it at shutdown);
    ensures ``settings.tenant`` exists; mounts the dashboard. The remediation routes use ``remediator`` (default:
    built from ``settings.remediation`` on first use, see :func:`opsmind.api.remediation_views.build_remediator`)."""
    owns = store is None
    the_store = store if store is not None else Store.open(settings.store)
    try:
        the_store.tenants.ensure(settings.tenant)
        state = AppState(settings=settings, store=the_store, telemetry=telemetry or Telemetry(),
                         incidents=_incident_service(the_store, settings, engine), engine=engine, clock=clock,
                         owns_store=owns)
    except BaseException:
        if owns:
            the_store.close()
        raise
    state.findings_registry.register(FindingsCollector(the_store, clock=clock))

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # sync routes run in threads; a few are enough for a database-bound API, and more only fight over the GIL
        anyio.to_thread.current_default_thread_limiter().total_tokens = state.threads
        yield
        if state.owns_store:
            state.store.close()

    app = FastAPI(title="opsmind", version=__version__, description=_DESCRIPTION, lifespan=lifespan,
                  docs_url="/docs", redoc_url=None, openapi_url="/openapi.json")
    app.state.opsmind = state
    app.state.remediation = RemediationHandle(settings, the_store, remediator=remediator)
    errors.install(app)
    for router in api_routers():
        app.include_router(router, prefix=API_PREFIX)
    app.include_router(metrics.router)
    app.add_middleware(RequestMiddleware, max_body_bytes=settings.api.max_body_bytes, telemetry=state.telemetry,
                       templates=path_templates)
    _mount_dashboard(app)
    return app


def _mount_dashboard(app: FastAPI) -> None:
    from opsmind.web import mount

    mount(app)


