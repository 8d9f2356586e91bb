"""Series: list, one, its samples, its latest forecast."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response

from opsmind.api import views
from opsmind.api.auth import ReadPrincipal
from opsmind.api.errors import responses
from opsmind.api.schemas import MAX_TIME_S, ForecastOut, SamplesOut, SeriesList, SeriesOut
from opsmind.api.state import AppState, state_dependency

router = APIRouter(tags=["series"], responses=responses(401, 403, 422))

SeriesId = Annotated[int, Path(ge=1, le=2**63 - 1, description="Series id.")]
State = Annotated[AppState, Depends(state_dependency)]
TimeQuery = Query(ge=0, le=MAX_TIME_S, description="Unix seconds.")


@router.get("/series", response_model=SeriesList, summary="List series")
def list_series(request: Request, principal: ReadPrincipal, state: State,
                service: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
                name: Annotated[str | None, Query(min_length=1, max_length=255)] = None,
                limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0) -> Response:
    def build() -> bytes:
        records = state.store.series.list(principal.tenant, name=name, service=service, limit=limit, offset=offset)
        return views.encode({"series": views.series_dicts(state.store, principal.tenant, records)})

    return state.reads.answer(principal.tenant, request, build)


@router.get("/series/{series_id}", response_model=SeriesOut, summary="One series", responses=responses(404))
def get_series(request: Request, series_id: SeriesId, principal: ReadPrincipal, state: State) -> Response:
    def build() -> bytes:
        record = state.store.series.get(principal.tenant, series_id)
        return views.encode(views.series_dict(record, state.store.samples.last(principal.tenant, series_id)))

    return state.reads.answer(principal.tenant, request, build)


@router.get("/series/{series_id}/samples", response_model=SamplesOut, summary="Samples of a series",
            responses=responses(404))
def get_samples(request: Request, series_id: SeriesId, principal: ReadPrincipal, state: State,
                start: Annotated[float | None, TimeQuery] = None, end: Annotated[float | None, TimeQuery] = None,
                limit: Annotated[int, Query(ge=1, le=100_000,
                                            description="The latest this many samples.")] = 10_000,
                rate: Annotated[bool, Query(description="The per-second rate between consecutive samples, counter "
                                            "resets corrected, instead of the values: what the engine analyses "
                                            "for a counter (a name ending in _total, _count, _sum or _bucket); "
                                            "the first sample has no rate.")] = False,
                ) -> Response:
    return state.reads.answer(principal.tenant, request, lambda: views.encode(views.samples_dict(
        state.store.samples.read(principal.tenant, series_id, start=start, end=end, limit=limit), rate)))


@router.get("/series/{series_id}/forecast", response_model=ForecastOut, summary="Latest forecast of a series",
            responses=responses(404))
def get_forecast(request: Request, series_id: SeriesId, principal: ReadPrincipal, state: State) -> Response:
    return state.reads.answer(principal.tenant, request, lambda: views.encode(views.forecast_dict(
        state.store.forecasts.latest(principal.tenant, series_id))))
