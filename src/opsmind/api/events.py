"""Server-sent events: new and changed records, polled from the store.

Every ``poll_s`` seconds the stream reads the newest records of each kind (``anomaly``, ``incident``,
``forecast``, ``recommendation``, ``remediation``) and sends those it has not sent in this version: a new record,
or one whose ``updated_at`` changed (an incident that gained an alert, a recommendation accepted; each status change
of a remediation run is a new record). Each event is::

    event: <kind>
    id: <kind>:<record id>
    data: <the record as the list routes answer it>

A client reconnecting with ``Last-Event-ID: <kind>:<id>`` gets the records of that kind with a larger id that are
still among the newest; the other kinds start from the reconnection (records they missed in between are not
replayed). A ``: ping`` comment goes out when nothing was sent for ``ping_s`` seconds. The stream ends when the
client disconnects.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio
from fastapi import Request
from starlette.concurrency import run_in_threadpool

from opsmind.api import remediation_views
from opsmind.api.views import SeriesRefs, anomalies_out, forecast_out
from opsmind.store import Store

__all__ = ["KINDS", "EventCursor", "Kind", "StreamCount", "format_event", "parse_last_event_id", "stream"]

WINDOW = 50  # newest records of each kind read per poll


@dataclass(frozen=True)
class Kind:
    """How one kind of record is read (newest first), versioned, and turned into event data (JSON)."""

    read: Callable[[Store, str], Sequence[Any]]
    version: Callable[[Any], float]
    render: Callable[[Store, str, Sequence[Any], SeriesRefs], list[str]]


def _created(record: Any) -> float:
    return float(record.created_at)


def _updated(record: Any) -> float:
    return float(record.updated_at)


def _dump(_: Store, __: str, records: Sequence[Any], ___: SeriesRefs) -> list[str]:
    return [r.model_dump_json() for r in records]


#: Event kinds and how each is read; another kind (``remediation``) is one more entry.
KINDS: dict[str, Kind] = {
    "anomaly": Kind(lambda store, t: store.anomalies.list(t, limit=WINDOW), _created,
                    lambda store, t, rs, refs: [a.model_dump_json() for a in anomalies_out(store, t, rs, refs)]),
    "incident": Kind(lambda store, t: store.incidents.list(t, limit=WINDOW), _updated, _dump),
    "forecast": Kind(lambda store, t: store.forecasts.list(t, limit=WINDOW), _created,
                     lambda _s, _t, rs, _r: [forecast_out(f).model_dump_json() for f in rs]),
    "recommendation": Kind(lambda store, t: store.recommendations.list(t, limit=WINDOW), _updated, _dump),
    # one event per status change of a run: each change is a new remediation.run audit entry (its id)
    "remediation": Kind(remediation_views.sse_read, remediation_views.sse_version, remediation_views.sse_render),
}


def parse_last_event_id(value: str | None) -> tuple[str, int] | None:
    """``("anomaly", 57)`` from ``anomaly:57``; ``None`` for anything else."""
    if not value:
        return None
    kind, _, rid = value.strip().partition(":")
    if kind not in KINDS or not rid.isdigit():
        return None
    return kind, int(rid)


def format_event(kind: str, record_id: int, data: str) -> str:
    return f"event: {kind}\nid: {kind}:{record_id}\ndata: {data}\n\n"


@dataclass
class EventCursor:
    """What one stream has sent: per kind, the version of each record among the newest."""

    kinds: dict[str, Kind] = field(default_factory=lambda: dict(KINDS))
    seen: dict[str, dict[int, float]] = field(default_factory=dict)
    refs: SeriesRefs = field(default_factory=SeriesRefs)

    def prime(self, store: Store, tenant: str, last: tuple[str, int] | None) -> None:
        """Mark what exists as sent, except records of ``last``'s kind with a larger id."""
        for name, kind in self.kinds.items():
            rows = kind.read(store, tenant)
            keep = (lambda r: r.id <= last[1]) if last is not None and last[0] == name else (lambda r: True)
            self.seen[name] = {r.id: kind.version(r) for r in rows if keep(r)}

    def poll(self, store: Store, tenant: str) -> list[str]:
        """The events to send now, oldest record first within each kind."""
        out: list[str] = []
        for name, kind in self.kinds.items():
            rows = kind.read(store, tenant)
            seen = self.seen.get(name, {})
            fresh = sorted((r for r in rows if seen.get(r.id) != kind.version(r)), key=lambda r: r.id)
            if fresh:
                out += [format_event(name, r.id, data) for r, data in
                        zip(fresh, kind.render(store, tenant, fresh, self.refs), strict=True)]
            self.seen[name] = {r.id: kind.version(r) for r in rows}
        return out


class StreamCount:
    """How many event streams are open (each stream counts itself in and out)."""

    def __init__(self) -> None:
        self.open = 0


async def stream(request: Request, store: Store, tenant: str, *, last_event_id: str | None, poll_s: float,
                 ping_s: float, count: StreamCount | None = None,
                 clock: Callable[[], float] = time.monotonic) -> AsyncIterator[str]:
    """The event stream of one client (see the module docstring); ends when the client disconnects."""
    counter = count or StreamCount()
    counter.open += 1
    try:
        cursor = EventCursor()
        await run_in_threadpool(cursor.prime, store, tenant, parse_last_event_id(last_event_id))
        yield "retry: 3000\n: connected\n\n"
        last_sent = clock()
        while not await request.is_disconnected():
            events = await run_in_threadpool(cursor.poll, store, tenant)
            if events:
                yield "".join(events)
                last_sent = clock()
            elif clock() - last_sent >= ping_s:
                yield ": ping\n\n"
                last_sent = clock()
            await anyio.sleep(poll_s)
    finally:
        counter.open -= 1
