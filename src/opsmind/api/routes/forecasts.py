"""Forecasts, most recently issued first."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response

from opsmind.api import views
from opsmind.api.auth import ReadPrincipal
from opsmind.api.errors import responses
from opsmind.api.schemas import MAX_TIME_S, ForecastList
from opsmind.api.state import AppState, state_dependency

router = APIRouter(tags=["forecasts"], responses=responses(401, 403, 422))


@router.get("/forecasts", response_model=ForecastList, summary="List forecasts")
def list_forecasts(request: Request, principal: ReadPrincipal,
                   state: Annotated[AppState, Depends(state_dependency)],
                   series_id: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
                   since: Annotated[float | None, Query(ge=0, le=MAX_TIME_S, description="Issued at or after, "
                                                       "Unix seconds.")] = None,
                   limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> Response:
    def build() -> bytes:
        records = state.store.forecasts.list(principal.tenant, series_id=series_id, since=since, limit=limit)
        return views.encode({"forecasts": [views.forecast_dict(r) for r in records]})

    return state.reads.answer(principal.tenant, request, build)
