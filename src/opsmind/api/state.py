"""What every route reaches through the request: settings, store, telemetry, engine and the incident service."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from fastapi import Request
from prometheus_client import CollectorRegistry

from opsmind.api.events import StreamCount
from opsmind.api.views import ReadCache, SeriesRefs
from opsmind.config import Settings
from opsmind.core.alerts import Alert
from opsmind.store import IncidentRecord, Store, TokenRecord
from opsmind.telemetry import Telemetry

__all__ = ["AppState", "EngineLike", "IncidentReceiver", "get_state", "state_dependency"]


class EngineLike(Protocol):
    """What the API needs of :class:`opsmind.engine.Engine`: its status for ``/api/v1/health``."""

    def status(self) -> Mapping[str, Any]: ...


class IncidentReceiver(Protocol):
    """What the Alertmanager webhook needs of :class:`opsmind.engine.incidents.IncidentService`."""

    def receive(self, tenant: str, alerts: Sequence[Alert], now: float) -> list[IncidentRecord]: ...


@dataclass
class AppState:
    """Held in ``app.state.opsmind``. ``event_poll_s`` is how often ``/api/v1/events`` polls the store,
    ``event_ping_s`` how long it stays silent before a ``: ping`` comment."""

    settings: Settings
    store: Store
    telemetry: Telemetry
    incidents: IncidentReceiver
    engine: EngineLike | None = None
    clock: Callable[[], float] = time.time
    owns_store: bool = False
    event_poll_s: float = 1.0
    event_ping_s: float = 15.0
    threads: int = 8  # threads running the sync routes (anyio's default limiter, set at startup)
    findings_registry: CollectorRegistry = field(default_factory=lambda: CollectorRegistry(auto_describe=False))
    series_refs: SeriesRefs = field(default_factory=SeriesRefs)
    #: Answers of the read routes, reused for a second per tenant and URL and cleared by every write request
    #: (see :class:`~opsmind.api.views.ReadCache`).
    reads: ReadCache = field(default_factory=ReadCache)
    streams: StreamCount = field(default_factory=StreamCount)
    #: An authenticated token is trusted this long without asking the store again (so revoking a token takes
    #: effect within this time); 0 asks every time.
    auth_cache_s: float = 2.0
    auth_cache: dict[str, tuple[float, TokenRecord]] = field(default_factory=dict)


def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.opsmind
    return state


async def state_dependency(request: Request) -> AppState:
    """:func:`get_state` as a dependency (async: FastAPI runs a sync dependency in a worker thread)."""
    return get_state(request)
