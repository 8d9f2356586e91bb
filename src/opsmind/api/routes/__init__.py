"""The API's routers, one per domain; each route is a few lines over :mod:`opsmind.api.views` and the store."""

from __future__ import annotations

from fastapi import APIRouter

from opsmind.api.routes import (
    anomalies,
    events,
    feedback,
    forecasts,
    health,
    incidents,
    ingest,
    metrics,
    recommendations,
    remediation,
    series,
    services,
)

__all__ = ["API_PREFIX", "api_routers", "metrics", "path_templates"]

API_PREFIX = "/api/v1"
_MODULES = (health, services, series, anomalies, forecasts, recommendations, incidents, feedback, ingest, events,
            remediation)


def api_routers() -> list[APIRouter]:
    """The routers of the ``/api/v1`` routes (each included with the prefix: nesting routers costs time on every
    request's route matching)."""
    return [m.router for m in _MODULES]


def path_templates() -> list[str]:
    """Every route's path template (``/api/v1/series/{series_id}``), for request counting."""
    paths = [API_PREFIX + str(getattr(r, "path", "")) for m in _MODULES for r in m.router.routes]
    return [*dict.fromkeys(paths), *(str(getattr(r, "path", "")) for r in metrics.router.routes)]
