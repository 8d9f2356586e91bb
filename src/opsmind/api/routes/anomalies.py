"""Anomalies, newest first, with their series and the verdict people gave."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response

from opsmind.api import views
from opsmind.api.auth import ReadPrincipal
from opsmind.api.errors import responses
from opsmind.api.schemas import MAX_TIME_S, AnomalyList, AnomalyOut
from opsmind.api.state import AppState, state_dependency

router = APIRouter(tags=["anomalies"], responses=responses(401, 403, 422))
State = Annotated[AppState, Depends(state_dependency)]


@router.get("/anomalies", response_model=AnomalyList, summary="List anomalies")
def list_anomalies(request: Request, principal: ReadPrincipal, state: State,
                   service: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
                   series_id: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
                   since: Annotated[float | None, Query(ge=0, le=MAX_TIME_S, description="Unix seconds.")] = None,
                   min_probability: Annotated[float | None, Query(ge=0, le=1)] = None,
                   limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> Response:
    def build() -> bytes:
        records = state.store.anomalies.list(principal.tenant, series_id=series_id, service=service, since=since,
                                             min_probability=min_probability, limit=limit)
        return views.encode({"anomalies": views.anomaly_dicts(state.store, principal.tenant, records,
                                                              state.series_refs)})

    return state.reads.answer(principal.tenant, request, build)


@router.get("/anomalies/{anomaly_id}", response_model=AnomalyOut, summary="One anomaly", responses=responses(404))
def get_anomaly(request: Request, anomaly_id: Annotated[int, Path(ge=1, le=2**63 - 1)], principal: ReadPrincipal,
                state: State) -> Response:
    def build() -> bytes:
        record = state.store.anomalies.get(principal.tenant, anomaly_id)
        return views.encode(views.anomaly_dicts(state.store, principal.tenant, [record], state.series_refs)[0])

    return state.reads.answer(principal.tenant, request, build)
