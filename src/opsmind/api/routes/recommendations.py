"""Recommendations (scale, rightsize, capacity) and their status (open, accepted, applied, dismissed)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response

from opsmind.api.auth import ReadPrincipal, WritePrincipal
from opsmind.api.errors import responses
from opsmind.api.schemas import RecommendationList, StatusIn
from opsmind.api.state import AppState, state_dependency
from opsmind.api.views import encode
from opsmind.store import RecommendationRecord

router = APIRouter(tags=["recommendations"], responses=responses(401, 403, 422))
State = Annotated[AppState, Depends(state_dependency)]


@router.get("/recommendations", response_model=RecommendationList, summary="List recommendations")
def list_recommendations(request: Request, principal: ReadPrincipal, state: State,
                         kind: Annotated[str | None, Query(min_length=1, max_length=64,
                                                           description="scale, rightsize, capacity")] = None,
                         service: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
                         status: Literal["open", "accepted", "applied", "dismissed"] | None = None,
                         limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> Response:
    def build() -> bytes:
        records = state.store.recommendations.list(principal.tenant, kind=kind, service=service, status=status,
                                                   limit=limit)
        return encode({"recommendations": records})

    return state.reads.answer(principal.tenant, request, build)


@router.post("/recommendations/{recommendation_id}/status", response_model=RecommendationRecord,
             summary="Accept, apply or dismiss a recommendation", responses=responses(400, 404))
def set_status(recommendation_id: Annotated[int, Path(ge=1, le=2**63 - 1)], body: StatusIn,
               principal: WritePrincipal, state: State) -> RecommendationRecord:
    with state.store.transaction() as tx:
        record = tx.recommendations.set_status(principal.tenant, recommendation_id, body.status)
        tx.audit.record(principal.tenant, principal.actor, "recommendation.status", target=str(record.id),
                        details={"status": body.status, "kind": record.kind, "target": record.target})
    return record
