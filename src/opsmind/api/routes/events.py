"""``GET /api/v1/events``: server-sent events of new and changed findings (see :mod:`opsmind.api.events`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import StreamingResponse

from opsmind.api.auth import ReadPrincipal
from opsmind.api.errors import responses
from opsmind.api.events import stream
from opsmind.api.state import AppState, state_dependency

router = APIRouter(tags=["events"], responses=responses(401, 403))

_SSE = {"200": {"description": "An event stream (`text/event-stream`).",
                "content": {"text/event-stream": {"schema": {"type": "string"}}}}}


@router.get("/events", response_class=StreamingResponse, summary="Live events (server-sent events)",
            responses=_SSE)  # type: ignore[arg-type]
async def events(request: Request, principal: ReadPrincipal, state: Annotated[AppState, Depends(state_dependency)],
                 last_event_id: Annotated[str | None, Header(alias="Last-Event-ID", max_length=200)] = None,
                 ) -> StreamingResponse:
    body = stream(request, state.store, principal.tenant, last_event_id=last_event_id, poll_s=state.event_poll_s,
                  ping_s=state.event_ping_s, count=state.streams)
    return StreamingResponse(body, media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
