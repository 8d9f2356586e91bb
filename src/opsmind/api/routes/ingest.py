"""Samples in: JSON (``POST /api/v1/ingest``) and Prometheus remote_write 1.0 (``POST /api/v1/write``)."""

from __future__ import annotations

import math
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from starlette.concurrency import run_in_threadpool

from opsmind.api.auth import WritePrincipal
from opsmind.api.errors import ApiError, responses
from opsmind.api.schemas import IngestIn, IngestOut
from opsmind.api.state import AppState, state_dependency
from opsmind.sources.remote_write import decode
from opsmind.store import SeriesSamples, Store

router = APIRouter(tags=["ingest"], responses=responses(401, 403, 413))
State = Annotated[AppState, Depends(state_dependency)]

#: A remote_write body may unpack to at most this many times the body limit.
MAX_EXPANSION = 16

_REMOTE_WRITE_BODY = {
    "requestBody": {
        "required": True,
        "description": "A snappy block-compressed protobuf WriteRequest (remote_write 1.0), as Prometheus sends.",
        "content": {"application/x-protobuf": {"schema": {"type": "string", "format": "binary"}}},
    },
}


@router.post("/ingest", response_model=IngestOut, summary="Store samples (JSON)", responses=responses(400, 422))
def ingest(body: IngestIn, principal: WritePrincipal, state: State) -> IngestOut:
    batches = [SeriesSamples(name=s.name, labels=s.labels, service=s.service,
                             ts=[p[0] for p in s.samples],  # type: ignore[misc]  # checked: not None
                             values=[math.nan if p[1] is None else p[1] for p in s.samples]) for s in body.series]
    result = state.store.samples.ingest(principal.tenant, batches)
    state.telemetry.ingested(principal.tenant, "ingest", result.inserted)
    return IngestOut(series=result.series, samples=result.samples, inserted=result.inserted)


def _remote_write(store: Store, tenant: str, body: bytes, max_bytes: int) -> int:
    decoded = decode(body, max_decompressed_bytes=max_bytes)
    return store.samples.ingest(tenant, decoded.series).inserted


@router.post("/write", status_code=204, response_class=Response, summary="Prometheus remote_write receiver",
             responses=responses(400, 415), openapi_extra=_REMOTE_WRITE_BODY)
async def remote_write(request: Request, principal: WritePrincipal, state: State) -> Response:
    content_type = request.headers.get("content-type", "")
    if "proto=io.prometheus.write.v2" in content_type:
        raise ApiError(415, "remote_write 2.0 is not supported; configure Prometheus with "
                       "protobuf_message: prometheus.WriteRequest (1.0)", field="header.Content-Type")
    encoding = request.headers.get("content-encoding", "snappy").strip().lower()
    if encoding not in ("snappy", ""):
        raise ApiError(415, f"Content-Encoding {encoding!r}: remote_write bodies are snappy-compressed",
                       field="header.Content-Encoding")
    body = await request.body()
    inserted = await run_in_threadpool(_remote_write, state.store, principal.tenant, body,
                                       MAX_EXPANSION * state.settings.api.max_body_bytes)
    state.telemetry.ingested(principal.tenant, "remote_write", inserted)
    return Response(status_code=204)
