"""Feedback on anomalies: right, wrong, or missed (what per-series calibration learns from)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends, Query, Request, Response

from opsmind.api.auth import ReadPrincipal, WritePrincipal
from opsmind.api.errors import responses
from opsmind.api.schemas import FeedbackIn, FeedbackList, FeedbackMark
from opsmind.api.state import AppState, state_dependency
from opsmind.api.views import encode
from opsmind.store import FeedbackRecord

router = APIRouter(tags=["feedback"], responses=responses(401, 403, 422))
State = Annotated[AppState, Depends(state_dependency)]


@router.post("/feedback", response_model=FeedbackRecord, summary="Mark an anomaly, or report a missed one",
             responses=responses(400, 404))
def post_feedback(body: Annotated[FeedbackIn, Body()], principal: WritePrincipal, state: State) -> FeedbackRecord:
    if isinstance(body, FeedbackMark):
        return state.store.feedback.mark(principal.tenant, body.anomaly_id, body.verdict, principal.actor,
                                         comment=body.comment)
    return state.store.feedback.report_missed(principal.tenant, body.series_id, body.ts, principal.actor,
                                              comment=body.comment)


@router.get("/feedback", response_model=FeedbackList, summary="List feedback")
def list_feedback(request: Request, principal: ReadPrincipal, state: State,
                  series_id: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
                  anomaly_id: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
                  limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> Response:
    return state.reads.answer(principal.tenant, request, lambda: encode({"feedback": state.store.feedback.list(
        principal.tenant, series_id=series_id, anomaly_id=anomaly_id, limit=limit)}))
