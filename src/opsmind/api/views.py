"""What the routes answer, built from the store: series with their latest sample, anomalies with their series and
feedback, forecasts with NaN as null, and the services overview with its health score.

The health score (:func:`health_score`) is a pure function of what the overview gathers:

* start at 100;
* anomalies: minus ``40 * p`` for the highest probability ``p`` of an anomaly (not suppressed) in the last hour;
* incidents: minus 60 / 40 / 20 / 5 for the worst open incident of priority P1 / P2 / P3 / P4;
* objectives: minus 20 when the latest latency (seconds) is above ``slo.latency_ms``, and minus 20 when the
  error ratio (errors per second over requests per second) is above ``1 - slo.availability``;
* clamped to [0, 100]. Status: ``critical`` below 50, ``warn`` below 80, else ``ok``; ``unknown`` (and no score)
  when the service has no sample, anomaly or incident at all.

>>> health_score(max_probability=0.5, incident_priorities=["P3"], latency_s=None, error_ratio=None, slo=None)
(60.0, 'warn', ['anomaly probability 0.50 in the last hour (-20)', 'open P3 incident (-20)'])
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Literal

import pydantic_core
from fastapi import Request, Response
from pydantic import BaseModel

from opsmind.api.schemas import (
    AnomalyOut,
    ForecastOut,
    RedValues,
    SamplesOut,
    SeriesOut,
    SeriesRef,
    ServiceHealth,
    UseValues,
)
from opsmind.config import DEFAULT_ROLES, ServiceConfig, Settings, SloConfig
from opsmind.core.counters import counter_rate
from opsmind.store import (
    AnomalyRecord,
    ForecastRecord,
    IncidentRecord,
    NotFoundError,
    Samples,
    SeriesRecord,
    Store,
)

__all__ = [
    "ReadCache",
    "SeriesRefs",
    "anomalies_out",
    "anomaly_dicts",
    "encode",
    "finite",
    "forecast_dict",
    "forecast_out",
    "health_score",
    "json_bytes",
    "json_response",
    "samples_dict",
    "samples_out",
    "series_dicts",
    "series_out",
    "services_overview",
]

Status = Literal["ok", "warn", "critical", "unknown"]
INCIDENT_PENALTY = {"P1": 60.0, "P2": 40.0, "P3": 20.0, "P4": 5.0}
ANOMALY_WEIGHT = 40.0
SLO_PENALTY = 20.0
_SUMMED = ("load", "errors", "cpu", "memory")  # several series of one role add up; latency takes the worst


def finite(value: float | None) -> float | None:
    """``value``, or ``None`` when it is missing, NaN or infinite (JSON has no NaN)."""
    if value is None or not math.isfinite(value):
        return None
    return float(value)


def _finite_list(values: Iterable[float | None]) -> list[float | None]:
    return [finite(v) for v in values]


def series_out(rec: SeriesRecord, last: tuple[float, float] | None) -> SeriesOut:
    return SeriesOut(id=rec.id, tenant=rec.tenant, name=rec.name, labels=rec.labels, service=rec.service,
                     created_at=rec.created_at, stale_since=rec.stale_since, selector=rec.selector,
                     last=None if last is None else [last[0], finite(last[1])])


def series_with_last(store: Store, tenant: str, records: Sequence[SeriesRecord]) -> list[SeriesOut]:
    last = store.samples.last_many(tenant, [r.id for r in records]) if records else {}
    return [series_out(r, last.get(r.id)) for r in records]


# -- answers as plain dicts, serialised once by :func:`encode` ----------------------------------------------------
# The list routes build these instead of the response models: validating every item of a list a second time (it
# came from the store as a checked record) was a third of a request's CPU. They have the models' fields exactly
# (the routes' ``response_model`` documents them, and tests/test_api_schemathesis.py checks answers against it).

def series_dict(rec: SeriesRecord, last: tuple[float, float] | None) -> dict[str, Any]:
    return {"id": rec.id, "tenant": rec.tenant, "name": rec.name, "labels": rec.labels, "service": rec.service,
            "created_at": rec.created_at, "stale_since": rec.stale_since, "selector": rec.selector,
            "last": None if last is None else [last[0], finite(last[1])]}


def series_dicts(store: Store, tenant: str, records: Sequence[SeriesRecord]) -> list[dict[str, Any]]:
    """The series with their latest sample (one query for all of them)."""
    last = store.samples.last_many(tenant, [r.id for r in records]) if records else {}
    return [series_dict(r, last.get(r.id)) for r in records]


def samples_dict(samples: Samples, rate: bool = False) -> dict[str, Any]:
    """``rate``: the per-second rate between consecutive samples, counter resets corrected, instead of the values."""
    ts, values = counter_rate(samples.ts, samples.values) if rate else (samples.ts, samples.values)
    return {"series_id": samples.series_id, "ts": ts.tolist(), "values": values.tolist()}


def forecast_dict(rec: ForecastRecord) -> dict[str, Any]:
    return {"id": rec.id, "tenant": rec.tenant, "series_id": rec.series_id, "issued_at": rec.issued_at,
            "method": rec.method, "horizon": rec.horizon, "timestamps": rec.timestamps, "mean": rec.mean,
            "intervals": {str(lv): [lo, hi] for lv, (lo, hi) in sorted(rec.intervals.items())},
            "notes": rec.notes, "created_at": rec.created_at}


def _verdicts(store: Store, tenant: str, records: Sequence[AnomalyRecord]) -> dict[int, str]:
    """The latest true/false verdict on each anomaly. Feedback on an anomaly is given after it was recorded, so one
    query (feedback since the oldest anomaly's ``created_at``) finds it all."""
    verdicts: dict[int, str] = {}
    wanted = {r.id for r in records}
    since = min(r.created_at for r in records)
    for fb in reversed(store.feedback.list(tenant, since=since, limit=100_000)):  # oldest first: latest wins
        if fb.anomaly_id in wanted and fb.verdict != "missed":
            verdicts[fb.anomaly_id] = fb.verdict
    return verdicts


def anomaly_dicts(store: Store, tenant: str, records: Sequence[AnomalyRecord],
                  refs: SeriesRefs | None = None) -> list[dict[str, Any]]:
    """:func:`anomalies_out` as dicts."""
    if not records:
        return []
    lookup = refs or SeriesRefs(ttl_s=0.0)
    series = lookup.get_many(store, tenant, {r.series_id for r in records})
    verdicts = _verdicts(store, tenant, records)
    out = []
    for r in records:
        ref = series.get(r.series_id)
        out.append({"id": r.id, "tenant": r.tenant, "series_id": r.series_id, "ts": r.ts,
                    "probability": r.probability, "score": finite(r.score), "severity": r.severity,
                    "detector": r.detector, "suppressed": r.suppressed, "evidence": r.evidence,
                    "created_at": r.created_at,
                    "series": None if ref is None else {"name": ref.name, "service": ref.service,
                                                        "labels": ref.labels},
                    "feedback": verdicts.get(r.id)})
    return out


def samples_out(samples: Samples) -> SamplesOut:
    return SamplesOut(series_id=samples.series_id, ts=samples.ts.tolist(), values=_finite_list(samples.values.tolist()))


def forecast_out(rec: ForecastRecord) -> ForecastOut:
    return ForecastOut(
        id=rec.id, tenant=rec.tenant, series_id=rec.series_id, issued_at=rec.issued_at, method=rec.method,
        horizon=rec.horizon, timestamps=list(rec.timestamps), mean=_finite_list(rec.mean),
        intervals={str(lv): [_finite_list(lo), _finite_list(hi)] for lv, (lo, hi) in sorted(rec.intervals.items())},
        notes=list(rec.notes), created_at=rec.created_at)


class SeriesRefs:
    """Series names, services and labels by id, remembered for ``ttl_s`` seconds (they change rarely and every
    anomaly list needs them)."""

    def __init__(self, ttl_s: float = 30.0, max_size: int = 100_000) -> None:
        self.ttl_s = ttl_s
        self.max_size = max_size
        self._items: dict[tuple[str, int], tuple[float, SeriesRef | None]] = {}
        self._lock = threading.Lock()

    def get(self, store: Store, tenant: str, series_id: int) -> SeriesRef | None:
        now = time.monotonic()
        key = (tenant, series_id)
        hit = self._items.get(key)
        if hit is not None and now - hit[0] < self.ttl_s:
            return hit[1]
        try:
            s = store.series.get(tenant, series_id)
            ref: SeriesRef | None = SeriesRef(name=s.name, service=s.service, labels=s.labels)
        except NotFoundError:  # deleted since the anomaly was read
            ref = None
        with self._lock:
            if len(self._items) >= self.max_size:
                self._items.clear()
            self._items[key] = (now, ref)
        return ref

    def get_many(self, store: Store, tenant: str, series_ids: Iterable[int]) -> dict[int, SeriesRef | None]:
        """:meth:`get` of several series: those not remembered are read in one query."""
        now = time.monotonic()
        out: dict[int, SeriesRef | None] = {}
        missing = []
        for sid in series_ids:
            hit = self._items.get((tenant, sid))
            if hit is not None and now - hit[0] < self.ttl_s:
                out[sid] = hit[1]
            else:
                missing.append(sid)
        if missing:
            found = store.series.get_many(tenant, missing)
            with self._lock:
                if len(self._items) + len(missing) >= self.max_size:
                    self._items.clear()
                for sid in missing:
                    s = found.get(sid)  # None: deleted since the anomaly was read
                    ref = None if s is None else SeriesRef(name=s.name, service=s.service, labels=s.labels)
                    self._items[(tenant, sid)] = (now, ref)
                    out[sid] = ref
        return out


def anomalies_out(store: Store, tenant: str, records: Sequence[AnomalyRecord],
                  refs: SeriesRefs | None = None) -> list[AnomalyOut]:
    """The anomalies with their series and the latest true/false verdict on each."""
    return [AnomalyOut.model_validate(d) for d in anomaly_dicts(store, tenant, records, refs)]


def health_score(*, max_probability: float | None, incident_priorities: Sequence[str], latency_s: float | None,
                 error_ratio: float | None, slo: SloConfig | None) -> tuple[float, Status, list[str]]:
    """The health score, its status and the reasons it is below 100 (see the module docstring)."""
    score = 100.0
    reasons: list[str] = []
    if max_probability is not None and max_probability > 0:
        cut = ANOMALY_WEIGHT * max_probability
        score -= cut
        reasons.append(f"anomaly probability {max_probability:.2f} in the last hour (-{cut:.0f})")
    worst = max(incident_priorities, key=lambda p: INCIDENT_PENALTY.get(p, 0.0), default=None)
    if worst is not None and worst in INCIDENT_PENALTY:
        score -= INCIDENT_PENALTY[worst]
        reasons.append(f"open {worst} incident (-{INCIDENT_PENALTY[worst]:.0f})")
    if slo is not None and slo.latency_ms is not None and latency_s is not None and latency_s * 1000 > slo.latency_ms:
        score -= SLO_PENALTY
        reasons.append(f"latency {latency_s * 1000:.0f} ms above the objective of {slo.latency_ms:g} ms "
                       f"(-{SLO_PENALTY:.0f})")
    if slo is not None and slo.availability is not None and error_ratio is not None \
            and error_ratio > 1 - slo.availability:
        score -= SLO_PENALTY
        reasons.append(f"error ratio {error_ratio:.4f} above the budget of {1 - slo.availability:.4f} "
                       f"(-{SLO_PENALTY:.0f})")
    score = min(100.0, max(0.0, round(score, 1)))
    status: Status = "critical" if score < 50 else "warn" if score < 80 else "ok"
    return score, status, reasons


def _role_series(series: Sequence[SeriesRecord], roles: Mapping[str, str]) -> dict[str, list[SeriesRecord]]:
    """Role -> the service's series of the role's metric (exact name, else the names starting with it)."""
    out: dict[str, list[SeriesRecord]] = {}
    for role, metric in roles.items():
        exact = [s for s in series if s.name == metric]
        out[role] = exact or [s for s in series if s.name.startswith(metric)]
    return out


def _combine(role: str, values: list[float]) -> float | None:
    if not values:
        return None
    return float(sum(values)) if role in _SUMMED else float(max(values))


def service_health(store: Store, tenant: str, service: str, config: ServiceConfig | None, now: float,
                   ) -> ServiceHealth:
    """One service's overview: latest RED/USE values, anomalies of the last hour, open incidents, health."""
    series = store.series.list(tenant, service=service, limit=10_000)
    anomalies = store.anomalies.list(tenant, service=service, since=now - 3600.0, include_suppressed=False,
                                     limit=10_000)
    incidents = store.incidents.list(tenant, status="open", service=service, limit=10_000)
    return _health_of(store, tenant, service, config, series, anomalies, incidents, {})


def _roles(config: ServiceConfig | None) -> dict[str, str]:
    return config.role_map() if config is not None else dict(DEFAULT_ROLES)


def _health_of(store: Store, tenant: str, service: str, config: ServiceConfig | None, series: Sequence[SeriesRecord],
               anomalies: Sequence[AnomalyRecord], incidents: Sequence[IncidentRecord],
               last: Mapping[int, tuple[float, float] | None]) -> ServiceHealth:
    """The overview of one service from its series, anomalies and open incidents; ``last`` holds the latest
    samples already read (the others are read here, all in one query)."""
    members = _role_series(series, _roles(config))
    wanted = [s.id for ms in members.values() for s in ms if s.id not in last]
    latest_of = {**last, **(store.samples.last_many(tenant, wanted) if wanted else {})}
    latest: dict[str, float | None] = {}
    has_data = False
    for role, ms in members.items():
        values = []
        for s in ms:
            sample = latest_of.get(s.id)
            if sample is not None and finite(sample[1]) is not None:
                values.append(sample[1])
        has_data = has_data or bool(values)
        latest[role] = _combine(role, values)
    max_p = max((a.probability for a in anomalies), default=None)
    rate, errors = latest.get("load"), latest.get("errors")
    ratio = min(1.0, errors / rate) if rate and errors is not None and rate > 0 else None
    slo = config.slo if config is not None else None
    if not has_data and series:  # no role series: any sample of the service counts as data
        has_data = bool(store.samples.last_many(tenant, [s.id for s in series[:10]]))
    health: float | None
    if has_data or anomalies or incidents:
        health, status, reasons = health_score(max_probability=max_p, incident_priorities=[i.priority for i in
                                               incidents], latency_s=latest.get("latency"), error_ratio=ratio,
                                               slo=slo)
    else:
        health, status, reasons = None, "unknown", ["no samples, anomalies or incidents yet"]
    return ServiceHealth(
        service=service, health=health, status=status,
        red=RedValues(rate=rate, errors=errors, latency=latest.get("latency")),
        use=UseValues(cpu=latest.get("cpu"), memory=latest.get("memory")),
        open_incidents=len(incidents), anomalies_1h=len(anomalies), max_probability=max_p, reasons=reasons)


_TENANT_SERIES = 100_000  # above this many series the overview reads service by service


def services_overview(store: Store, settings: Settings, tenant: str, now: float) -> list[ServiceHealth]:
    """Every service of the configuration and of the store, worst health first. Reads the tenant's series,
    anomalies of the last hour and open incidents once for all services, and the latest samples of every role
    series in one query."""
    configs = {s.name: s for s in settings.services} if tenant == settings.tenant else {}
    names = list(dict.fromkeys([*configs, *store.series.services(tenant)]))
    series = store.series.list(tenant, limit=_TENANT_SERIES)
    if len(series) >= _TENANT_SERIES:
        rows = [service_health(store, tenant, n, configs.get(n), now) for n in names]
    else:
        by_service: dict[str, list[SeriesRecord]] = {}
        for s in series:
            if s.service is not None:
                by_service.setdefault(s.service, []).append(s)
        service_of = {s.id: s.service for s in series}
        anomalies: dict[str, list[AnomalyRecord]] = {}
        for a in store.anomalies.list(tenant, since=now - 3600.0, include_suppressed=False, limit=100_000):
            svc = service_of.get(a.series_id)
            if svc is not None:
                anomalies.setdefault(svc, []).append(a)
        incidents = store.incidents.list(tenant, status="open", limit=10_000)
        role_ids = [s.id for n in names for ms in _role_series(by_service.get(n, []), _roles(configs.get(n))).values()
                    for s in ms]
        last: dict[int, tuple[float, float] | None] = dict.fromkeys(role_ids)
        last.update(store.samples.last_many(tenant, role_ids) if role_ids else {})
        rows = [_health_of(store, tenant, n, configs.get(n), by_service.get(n, []), anomalies.get(n, []),
                           [i for i in incidents if n in i.services], last) for n in names]
    return sorted(rows, key=lambda r: (r.health is None, r.health if r.health is not None else 0.0, r.service))


class ReadCache:
    """Answers of the read routes, reused for ``ttl_s`` seconds per tenant and URL (path and query string).

    Every open dashboard polls the same few URLs; within ``ttl_s`` they share one store read and one
    serialisation. Any write request through this server (any method but GET, HEAD and OPTIONS, see
    :class:`opsmind.api.middleware.RequestMiddleware`) clears it, so a client sees its own writes at once; records
    written by other processes, or by the engine in this process, show within ``ttl_s`` (the event stream, which
    is never cached, pushes them as they are written). Only successful answers are kept; ``ttl_s`` 0 turns it
    off."""

    def __init__(self, ttl_s: float = 1.0, max_entries: int = 4096,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._clock = clock
        self._items: dict[tuple[str, str, str], tuple[float, bytes]] = {}
        self._generation = 0
        self._lock = threading.Lock()

    def answer(self, tenant: str, request: Request, build: Callable[[], bytes]) -> Response:
        """The remembered answer to this request, else ``build()`` (JSON bytes) remembered. (The routes are sync,
        run in worker threads: answering the hits on the event loop instead cost more CPU per request, measured
        with ``opsmind bench service``, as the loop and the workers then fight over the GIL.)"""
        key = (tenant, request.url.path, request.url.query)
        now = self._clock()
        hit = self._items.get(key)
        if hit is not None and 0 <= now - hit[0] < self.ttl_s:
            return Response(hit[1], media_type="application/json")
        generation = self._generation
        body = build()
        if self.ttl_s > 0:
            with self._lock:
                if generation == self._generation:  # no write cleared the cache while this answer was read
                    if len(self._items) >= self.max_entries:
                        self._items.clear()
                    self._items[key] = (now, body)
        return Response(body, media_type="application/json")

    def clear(self) -> None:
        with self._lock:
            self._generation += 1
            self._items.clear()


def encode(content: Any) -> bytes:
    """JSON bytes of dicts, lists, numbers, strings and pydantic models (serialised in one pass by pydantic-core;
    NaN and infinities become ``null``)."""
    return pydantic_core.to_json(content, inf_nan_mode="null")


def json_bytes(content: Any, status_code: int = 200) -> Response:
    """``content`` (see :func:`encode`) as a JSON response."""
    return Response(encode(content), status_code=status_code, media_type="application/json")


def json_response(model: BaseModel, status_code: int = 200) -> Response:
    """``model`` as a JSON response, serialised once by pydantic (FastAPI would validate and serialise it again;
    the route's ``response_model`` still documents it). NaN and infinities become ``null``."""
    return Response(model.model_dump_json(), status_code=status_code, media_type="application/json")
