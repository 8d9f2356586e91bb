"""Incidents, and the Alertmanager webhook that opens and updates them."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Path, Query, Request, Response

from opsmind.api.auth import ReadPrincipal, WritePrincipal
from opsmind.api.errors import responses
from opsmind.api.schemas import IncidentList, WebhookOut
from opsmind.api.state import AppState, state_dependency
from opsmind.api.views import encode
from opsmind.sources.alertmanager import parse_webhook
from opsmind.store import IncidentRecord

router = APIRouter(tags=["incidents"], responses=responses(401, 403, 422))
State = Annotated[AppState, Depends(state_dependency)]

_WEBHOOK_EXAMPLE = {
    "version": "4", "groupKey": "{}:{alertname=\"HighLatency\"}", "status": "firing", "receiver": "opsmind",
    "groupLabels": {"alertname": "HighLatency"}, "commonLabels": {}, "commonAnnotations": {}, "externalURL": "",
    "alerts": [{"status": "firing", "labels": {"alertname": "HighLatency", "service": "checkout",
                                               "severity": "critical"},
                "annotations": {"summary": "p95 above 300 ms"}, "startsAt": "2026-12-02T03:00:00Z",
                "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "", "fingerprint": "6d0181b725a54201"}],
}


@router.get("/incidents", response_model=IncidentList, summary="List incidents")
def list_incidents(request: Request, principal: ReadPrincipal, state: State,
                   status: Literal["open", "resolved", "closed"] | None = None,
                   service: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
                   limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> Response:
    return state.reads.answer(principal.tenant, request, lambda: encode({"incidents": state.store.incidents.list(
        principal.tenant, status=status, service=service, limit=limit)}))


@router.get("/incidents/{key}", response_model=IncidentRecord, summary="One incident", responses=responses(404))
def get_incident(request: Request, key: Annotated[str, Path(min_length=1, max_length=64)],
                 principal: ReadPrincipal, state: State) -> Response:
    return state.reads.answer(principal.tenant, request,
                              lambda: encode(state.store.incidents.get(principal.tenant, key)))


@router.post("/alertmanager/webhook", response_model=WebhookOut, summary="Alertmanager webhook receiver (v4)",
             responses=responses(400))
def alertmanager_webhook(
    payload: Annotated[dict[str, Any], Body(description="Alertmanager's webhook payload, version 4.",
                                            examples=[_WEBHOOK_EXAMPLE])],
    principal: WritePrincipal, state: State,
) -> WebhookOut:
    now = state.clock()
    batch = parse_webhook(payload, now=now)  # DataError naming the field -> 400
    records = state.incidents.receive(principal.tenant, list(batch.alerts), now)
    return WebhookOut(incidents=list(dict.fromkeys(r.key for r in records)))
