"""``GET /api/v1/services``: every service with its RED/USE values, anomalies, incidents and health score."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from opsmind.api import views
from opsmind.api.auth import ReadPrincipal
from opsmind.api.errors import responses
from opsmind.api.schemas import ServiceList
from opsmind.api.state import AppState, state_dependency

router = APIRouter(tags=["services"], responses=responses(401, 403))


@router.get("/services", response_model=ServiceList, summary="Services overview with health scores")
def list_services(request: Request, principal: ReadPrincipal,
                  state: Annotated[AppState, Depends(state_dependency)]) -> Response:
    return state.reads.answer(principal.tenant, request, lambda: views.encode(
        {"services": views.services_overview(state.store, state.settings, principal.tenant, state.clock())}))
