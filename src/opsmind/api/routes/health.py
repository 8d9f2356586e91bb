"""``GET /api/v1/health``: is the store reachable, is the engine running (no token needed)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from starlette.concurrency import run_in_threadpool

from opsmind import __version__
from opsmind.api.schemas import Health
from opsmind.api.state import AppState, state_dependency
from opsmind.core.errors import OpsmindError

router = APIRouter(tags=["health"])


@router.get("/health", response_model=Health, summary="Service health")
async def health(state: Annotated[AppState, Depends(state_dependency)]) -> Health:
    try:
        await run_in_threadpool(state.store.ping)
        store = "ok"
    except OpsmindError as exc:
        store = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    engine: dict[str, Any] | None = None
    down = False
    if state.engine is not None:
        try:
            engine = dict(state.engine.status())
        except Exception as exc:  # the engine's status is informative; its failure must not fail the health check
            engine, down = {"error": f"{type(exc).__name__}: {exc}"}, True
        sources = engine.get("sources") or {}
        down = down or (isinstance(sources, dict) and not all(bool(v) for v in sources.values()))
    return Health(status="ok" if store == "ok" and not down else "degraded", version=__version__, store=store,
                  engine=engine, time=state.clock())
