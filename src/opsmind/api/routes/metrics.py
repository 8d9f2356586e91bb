"""``GET /metrics`` (no token): opsmind's telemetry and findings in the Prometheus text format."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response
from prometheus_client import CONTENT_TYPE_LATEST

from opsmind.api.exporter import render_metrics
from opsmind.api.state import AppState, state_dependency

router = APIRouter(tags=["metrics"])

_TEXT = {"200": {"description": "Prometheus text exposition format.",
                 "content": {"text/plain": {"schema": {"type": "string"}}}}}


@router.get("/metrics", response_class=Response, summary="Prometheus metrics", responses=_TEXT)  # type: ignore[arg-type]
def metrics(state: Annotated[AppState, Depends(state_dependency)]) -> Response:
    return Response(render_metrics(state.telemetry, state.findings_registry), media_type=CONTENT_TYPE_LATEST)
