"""The engine loop: pull -> store -> detect -> anomalies -> alerts -> incidents (+ RCA) -> scheduled analyses.

One cycle (:meth:`Engine.run_cycle`):

1. **Pull.** Every query of every configured service (``ServiceConfig.metrics``) is asked of the source (a
   Prometheus server, or a :class:`~opsmind.engine.sources.ScrapeSource`): ``history_s`` for a query seen the
   first time, afterwards only what is newer than the series' last stored sample (on the ``scrape_interval_s``
   grid, so a replay asks for the same timestamps). A source that fails is marked down and tried again after an
   exponential backoff (up to ``backoff_max_s``); the other work goes on.
2. **Detect.** Each series with new samples becomes a :class:`~opsmind.engine.detection.DetectTask` run through a
   ``concurrent.futures`` executor (process pool by default, threads, or a Dask cluster): a new series learns
   its history, a known one is scored only on samples newer than its last scored time, with its alert threshold
   calibrated by people's feedback (:func:`opsmind.detect.calibration.calibrated_threshold`).
3. **Record.** For each series, its new samples and its anomalies are written in *one* transaction, with its
   model state when that is due (every ``state_every_s``, when its alert opens or closes, and at a clean stop: a
   state is 0.1-0.2 MB, too much to write every cycle). After a crash a restarted engine restores the last saved
   state and scores the samples stored since then again, from the store when the source no longer has them: it
   neither loses an acknowledged sample nor records an anomaly twice (anomalies are keyed by series and time),
   and ends where an uninterrupted run would.
4. **Alerts and incidents.** Each series whose alert is open is a firing ``OpsmindAnomaly`` alert; the
   :class:`~opsmind.engine.incidents.IncidentService` makes the incidents match that set, and incidents open for
   ``rca.window_s`` get their root-cause analysis.
5. **Remediation** (when ``remediation.playbooks`` is set, :mod:`opsmind.engine.remediation`): the open
   incidents, the cycle's anomalies and predicted capacity breaches go to the
   :class:`~opsmind.remediate.Remediator` (``engine.remediator``), which runs in a worker thread of its own.
6. **Scheduled jobs** (:mod:`opsmind.engine.jobs`), **stale marking** (no sample for ``stale_after_s``), and the
   dispatcher's ``sync`` with every firing alert.

**Pushed series.** Series that arrive only through the API (``POST /api/v1/ingest``, remote write) are in the
store but in no configured query. Each cycle the engine also looks for such series with samples newer than their
last scored one (up to ``pushed_per_cycle`` series a cycle, in turns) and runs the same detection on them; their
samples are already stored, so only anomalies and model state are written. Counters by the Prometheus naming
conventions (``*_total``, ``*_count``, ``*_sum``, ``*_bucket``) arrive as running totals: their per-second rate
between consecutive samples (resets corrected) is what is analysed.
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import os
import pickle
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import numpy as np

from opsmind.config import ServiceConfig, Settings
from opsmind.core import ConfigError, OpsmindError, SourceError
from opsmind.core.alerts import Alert
from opsmind.core.counters import counter_rate, is_counter
from opsmind.detect.calibration import calibrated_threshold
from opsmind.engine.alerts import anomaly_alert, incident_alert
from opsmind.engine.detection import (
    DetectResult,
    DetectTask,
    OpenAlert,
    SeriesModel,
    ThresholdSettings,
    detect_series,
    exit_with_parent,
)
from opsmind.engine.incidents import IncidentService
from opsmind.engine.jobs import Jobs
from opsmind.engine.rca import CAPACITY_ROLES, analysis_window, incident_rca, own_changes
from opsmind.engine.remediation import RemediationLoop, anomaly_event, build_remediator
from opsmind.engine.sources import PullSource, ScrapeSource
from opsmind.rca.frames import parse_series_name
from opsmind.remediate import Event, Remediator
from opsmind.sources.prometheus import Prometheus
from opsmind.store import AnomalyIn, SeriesRecord, SeriesSamples, Store
from opsmind.telemetry import Telemetry

__all__ = ["CycleReport", "Dispatcher", "Engine", "make_executor"]

log = logging.getLogger("opsmind.engine")

ROLE = "detector"
_CONTEXT = 32  # samples kept per series for the baseline in anomaly evidence
_KEEP_STATES = 3  # detector state versions kept per series...
_PRUNE_EVERY = 10  # ...pruned every this many versions


class Dispatcher(Protocol):
    """What the engine needs of :class:`opsmind.notify.Dispatcher`."""

    def sync(self, tenant: str, firing: list[Alert], now: float) -> Any: ...


@dataclass(frozen=True)
class CycleReport:
    """What one cycle did."""

    at: float
    duration_s: float
    series: int
    pulled: int
    inserted: int
    trained: int
    scored: int
    anomalies: int
    firing: int
    incidents: tuple[str, ...]
    rca: int
    jobs: Mapping[str, int]
    stale: int
    sources: Mapping[str, bool]
    errors: tuple[str, ...] = ()


@dataclass
class _Series:
    """What the engine remembers of one series between cycles (its state bytes are the stored ones)."""

    id: int
    service: str
    metric: str
    labels: dict[str, str]
    selector: str
    state: bytes | None = None
    last_ts: float | None = None  # of the last stored (and scored) sample
    alert: OpenAlert | None = None
    probability: float = 0.0
    stale: bool = False
    pushed: bool = False  # in the store only through the API (no configured query): its samples are stored already
    context: deque[tuple[float, float]] = field(default_factory=lambda: deque(maxlen=_CONTEXT))
    saved_at: float | None = None  # when its state was last saved (engine clock)
    unsaved: dict[str, Any] | None = None  # the newest state not saved yet: models.save arguments
    catch_up: float | None = None  # after a restore: stored samples up to here are newer than the saved state


def make_executor(settings: Settings) -> Executor:
    """The executor per-series work runs on: ``process`` (default), ``thread`` or ``dask``."""
    e = settings.engine
    workers = e.workers or max(1, os.cpu_count() or 1)
    if e.executor == "thread":
        return ThreadPoolExecutor(max_workers=workers, thread_name_prefix="opsmind-detect")
    if e.executor == "dask":
        try:
            from dask.distributed import Client
        except ImportError:
            raise ConfigError("engine.executor 'dask' needs dask[distributed] (pip install 'opsmind[dask]')") from None
        client = Client(e.dask_address)  # type: ignore[no-untyped-call]
        executor: Executor = client.get_executor()  # type: ignore[no-untyped-call]
        return executor
    # spawn: the engine runs beside the API's threads, and forking a threaded process is unsafe
    return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=exit_with_parent, initargs=(os.getpid(),))


def _threshold_settings(settings: Settings) -> ThresholdSettings:
    e = settings.engine
    return ThresholdSettings(threshold=e.threshold, refractory_s=e.refractory_s, clear=e.clear,
                             resolve_after_s=e.resolve_after_s)


class Engine:
    """Runs opsmind continuously for ``settings`` over ``store`` (see the module docstring).

    ``source`` replaces the Prometheus server of ``settings.prometheus`` (``opsmind demo`` passes a
    :class:`~opsmind.engine.sources.ScrapeSource`). ``clock`` gives the time of a cycle run without one.
    """

    def __init__(self, settings: Settings, store: Store, *, telemetry: Telemetry | None = None,
                 dispatcher: Dispatcher | None = None, clock: Callable[[], float] = time.time,
                 source: ScrapeSource | Prometheus | None = None, executor: Executor | None = None,
                 remediator: Remediator | None = None) -> None:
        self.settings = settings
        self.store = store
        self.telemetry = telemetry
        self.dispatcher = dispatcher
        self.clock = clock
        self.tenant = settings.tenant
        store.tenants.ensure(self.tenant)
        self.incidents = IncidentService(store, settings)
        e = settings.engine
        self.threshold = _threshold_settings(settings)
        self._spec = dict(e.detector)
        self._sources: dict[str, PullSource] = {}
        if source is None and settings.scrape:  # /metrics endpoints read directly
            source = ScrapeSource(list(settings.scrape), timeout_s=10.0)
        if source is None and settings.prometheus is not None:
            source = Prometheus(settings.prometheus)
        if source is not None:
            name = "scrape" if isinstance(source, ScrapeSource) else "prometheus"
            self._sources[name] = PullSource(name, source, backoff_s=min(e.scrape_interval_s, e.backoff_max_s),
                                             backoff_max_s=e.backoff_max_s)
        self._series: dict[int, _Series] = {}
        self._by_query: dict[tuple[str, str], list[int]] = {}
        self._restored = False
        self.feedback_ttl_s = 30.0
        self._feedback_cache: dict[int, tuple[float, dict[str, int]]] = {}
        self._executor = executor
        self._own_executor = executor is None
        self._jobs = Jobs(settings, store, telemetry)
        self._jobs_pool: ThreadPoolExecutor | None = None  # scheduled jobs run beside the cycles, never in them
        self._jobs_future: Future[dict[str, int]] | None = None
        self._jobs_done: dict[str, int] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._cycles = 0
        self._last_cycle_at: float | None = None
        self._last_report: CycleReport | None = None
        self._last_error: str | None = None
        self.pushed_per_cycle = 200  # pushed series looked at per cycle (in turns)
        self._pushed_after = -1  # the last pushed series looked at (they take turns by id)
        self._pushed_seen: dict[int, float] = {}  # pushed series -> newest sample time looked at
        self._cycle_findings: list[tuple[int, float]] = []  # (series id, first anomaly time) of this cycle
        if remediator is None and settings.remediation.playbooks:
            remediator = build_remediator(settings, store)
        self.remediator = remediator
        self.remediation = RemediationLoop(remediator, telemetry=telemetry) if remediator is not None else None

    # -- public -------------------------------------------------------------------------------------------------
    def run_cycle(self, now: float | None = None) -> CycleReport:
        """Run one cycle at ``now`` (default: the clock); see the module docstring."""
        with self._lock:
            return self._cycle(self.clock() if now is None else float(now))

    def start(self) -> None:
        """Run cycles every ``scrape_interval_s`` in a background thread until :meth:`stop`."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._jobs.stopping.clear()
        self._thread = threading.Thread(target=self._loop, name="opsmind-engine", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop the background thread (after its current cycle) and release the executor and sources."""
        self._stop.set()
        self._jobs.stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout_s)
            self._thread = None
        with self._lock:
            if self._jobs_pool is not None:
                self._jobs_pool.shutdown(wait=True, cancel_futures=True)
                self._jobs_pool = None
            if self._executor is not None and self._own_executor:
                self._executor.shutdown(wait=True, cancel_futures=True)
                self._executor = None
            for slot in self._sources.values():
                slot.close()
        if self.remediation is not None:
            self.remediation.stop()
        self._flush_states()

    def status(self) -> dict[str, Any]:
        """For ``/api/v1/health``: last cycle, cycles run, sources up, series and stale series."""
        report = self._last_report
        return {
            "running": self._thread is not None and self._thread.is_alive(),
            "last_cycle_at": self._last_cycle_at,
            "cycles": self._cycles,
            "sources": {name: slot.up for name, slot in self._sources.items()},
            "series": len(self._series),
            "stale": sum(s.stale for s in list(self._series.values())),
            "last_error": self._last_error,
            "last_cycle_s": None if report is None else round(report.duration_s, 4),
        }

    def series_map(self) -> dict[str, dict[str, int]]:
        """``{service: {metric name: series id}}`` (the first series of each metric) of the configured services
        (their samples pulled, or pushed when there is nothing to pull from)."""
        out: dict[str, dict[str, int]] = {}
        for s in sorted(list(self._series.values()), key=lambda x: x.id):
            if s.pushed and s.id not in self._by_query.get((s.service, s.metric), ()):
                continue
            out.setdefault(s.service, {}).setdefault(s.metric, s.id)
        return out

    def firing(self, now: float) -> list[Alert]:
        """Every alert firing now: one per anomalous series, one per open incident."""
        anomaly = list(self._anomaly_alerts().values())
        return anomaly + [incident_alert(inc, tenant=self.tenant, base_url=self._base_url())
                          for inc in self.incidents.firing_incidents(self.tenant)]

    # -- the loop -----------------------------------------------------------------------------------------------
    def _loop(self) -> None:
        interval = self.settings.engine.scrape_interval_s
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                self.run_cycle()
            except Exception as exc:  # the loop must survive anything a cycle does
                self._last_error = f"{type(exc).__name__}: {exc}"
                log.exception("engine cycle failed")
                if self.telemetry is not None:
                    self.telemetry.error("cycle")
            self._stop.wait(max(0.0, interval - (time.monotonic() - started)))

    def _cycle(self, now: float) -> CycleReport:
        t0 = time.monotonic()
        errors: list[str] = []
        if not self._restored:
            self._restore()
        pulled = self._pull(now, errors)
        self._catch_up(pulled, errors)
        pulled.update(self._pushed(now, set(pulled), errors))
        self._cycle_findings = []
        tasks = self._tasks(pulled)
        results = self._detect(tasks, errors)
        inserted = anomalies = trained = scored = 0
        for sid in sorted(set(pulled) - {r.key for r in results}):  # detection failed: keep the samples anyway,
            if not self._series[sid].pushed:  # they are scored again next cycle
                inserted += self._store_samples(sid, pulled[sid], errors)
        for res in results:
            try:
                ins, n_anom = self._record(res, pulled[res.key], now)
            except OpsmindError as exc:
                errors.append(f"record series {res.key}: {exc}")
                self._count_error("record")
                continue
            inserted += ins
            anomalies += n_anom
            trained += res.trained
            scored += res.scored
        firing = self._anomaly_alerts()
        touched = self._incidents(firing, now, errors)
        rca = self._rca(now, errors)
        self._remediate(now, errors)
        jobs = self._run_jobs(now, errors)
        stale = self._mark_stale(now, errors)
        if self.dispatcher is not None:
            try:
                self.dispatcher.sync(self.tenant, self.firing(now), now)
            except Exception as exc:  # a notifier must not stop the engine
                errors.append(f"notify: {exc}")
                self._count_error("notify")
        duration = time.monotonic() - t0
        if self.telemetry is not None:
            self.telemetry.cycle(duration)
        report = CycleReport(at=now, duration_s=duration, series=len(self._series),
                             pulled=sum(len(p[0]) for p in pulled.values()), inserted=inserted, trained=trained,
                             scored=scored, anomalies=anomalies, firing=len(firing), incidents=tuple(touched),
                             rca=rca, jobs=jobs, stale=stale,
                             sources={n: s.up for n, s in self._sources.items()}, errors=tuple(errors))
        self._cycles += 1
        self._last_cycle_at = now
        self._last_report = report
        if errors:
            self._last_error = errors[-1]
            for err in errors:
                log.warning("%s", err)
        return report

    def _run_jobs(self, now: float, errors: list[str]) -> dict[str, int]:
        """Collect what the last scheduled jobs did, and start the due ones in the jobs thread."""
        done: dict[str, int] = {}
        fut = self._jobs_future
        if fut is not None and fut.done():
            self._jobs_future = None
            try:
                done = fut.result()
            except Exception as exc:  # a job must not stop the engine
                errors.append(f"jobs: {type(exc).__name__}: {exc}")
                self._count_error("jobs")
            errors += self._jobs.errors
            self._jobs.errors.clear()
        if self._jobs_future is None and self._jobs.any_due(now):
            if self._jobs_pool is None:
                self._jobs_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="opsmind-jobs")
            self._jobs_future = self._jobs_pool.submit(self._jobs.run_due, now, self.series_map())
        return done

    def wait_jobs(self, timeout_s: float | None = None) -> dict[str, int]:
        """Wait for the scheduled jobs started by the last cycle; what they saved (for tests and shutdown)."""
        fut = self._jobs_future
        if fut is None:
            return {}
        self._jobs_future = None
        return fut.result(timeout=timeout_s)

    def _count_error(self, stage: str) -> None:
        if self.telemetry is not None:
            self.telemetry.error(stage)

    # -- restore ------------------------------------------------------------------------------------------------
    def _restore(self) -> None:
        """Find the configured services' stored series and their detector states (after a restart), and the pushed
        series whose alert was firing: pushed series are otherwise picked up in turns as their samples arrive, and
        until then the incidents would take their alerts for resolved."""
        from opsmind.store import NotFoundError

        for svc in self.settings.services:
            for metric in svc.metrics:
                for rec in self.store.series.list(self.tenant, name=metric, service=svc.name, limit=100_000):
                    info = self._register(svc.name, metric, rec.id, rec.labels, rec.selector)
                    info.stale = rec.stale_since is not None
                    info.pushed = not self._sources  # nothing to pull from: its samples come through the API
                    self._load_state(info)
        try:
            firing = self.incidents.firing_series(self.tenant, "OpsmindAnomaly")
        except OpsmindError as exc:
            log.warning("pushed series with open alerts not restored: %s", exc)
            firing = set()
        for sid in sorted(firing - set(self._series)):
            try:
                self._adopt_pushed(self.store.series.get(self.tenant, sid))
            except NotFoundError:  # deleted since
                continue
            except (OpsmindError, pickle.UnpicklingError, EOFError, AttributeError, ValueError) as exc:
                log.warning("pushed series %s not restored (it is picked up when it sends samples): %s", sid, exc)
        self._restored = True

    def _register(self, service: str, metric: str, sid: int, labels: dict[str, str], selector: str) -> _Series:
        info = self._series.get(sid)
        if info is None:
            info = _Series(sid, service, metric, dict(labels), selector)
            self._series[sid] = info
            self._by_query.setdefault((service, metric), []).append(sid)
        return info

    def _load_state(self, info: _Series) -> None:
        from opsmind.store import NotFoundError

        try:
            rec = self.store.models.latest(self.tenant, info.id, ROLE)
        except NotFoundError:
            rec = None
        if rec is not None:
            state = rec.load()
            if isinstance(state, bytes):
                model = pickle.loads(state)  # written by this engine
                if isinstance(model, SeriesModel):
                    info.state, info.last_ts, info.alert = state, model.last_ts, model.alert
                    info.probability = model.last_probability
        last = self.store.samples.last(self.tenant, info.id)
        if info.last_ts is not None and last is not None and last[0] > info.last_ts + 1e-4:
            info.catch_up = last[0]  # stored after the saved state: scored again (see _catch_up)
        end = info.last_ts if info.last_ts is not None else (last[0] if last is not None else None)
        if end is not None:
            ctx = self.store.samples.read(self.tenant, info.id, end=end, limit=_CONTEXT)
            info.context.extend(zip(ctx.ts.tolist(), ctx.values.tolist(), strict=True))

    # -- pull ---------------------------------------------------------------------------------------------------
    def _pull(self, now: float, errors: list[str]) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        """New samples per series id: ``(ts, values)`` newer than its last stored sample."""
        out: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        for name, slot in self._sources.items():
            if not slot.ready(now):
                continue
            try:
                slot.refresh(now)
                self._pull_source(slot, now, out, errors)
            except SourceError as exc:
                wait = slot.failed(now, str(exc))
                errors.append(f"source {name} down (next try in {wait:g} s): {exc}")
                self._count_error("pull")
            else:
                slot.succeeded()
            if self.telemetry is not None:
                self.telemetry.source_up(name, slot.up)
        return out

    def _pull_source(self, slot: PullSource, now: float, out: dict[int, tuple[np.ndarray, np.ndarray]],
                     errors: list[str]) -> None:
        e = self.settings.engine
        step = e.scrape_interval_s
        for svc in self.settings.services:
            for metric, query in svc.metrics.items():
                known = [self._series[i] for i in self._by_query.get((svc.name, metric), [])]
                lasts = [s.last_ts for s in known if s.last_ts is not None]
                first = now - e.history_s
                start = max(min(lasts), first) + 1e-3 if lasts and len(lasts) == len(known) else first
                if isinstance(slot.source, Prometheus):  # on the step grid: a replay asks for the same times
                    start = math.ceil(start / step) * step
                    end = math.floor(now / step) * step
                else:
                    end = now
                if end < start:
                    continue
                try:
                    frame = slot.fetch(query, start, end, step)
                except (ConfigError, SourceError) as exc:
                    if isinstance(exc, SourceError) and _is_outage(exc):
                        raise
                    errors.append(f"query {svc.name}/{metric}: {exc}")
                    self._count_error("query")
                    continue
                self._collect(svc, metric, frame, out)

    def _collect(self, svc: ServiceConfig, metric: str, frame: Any,
                 out: dict[int, tuple[np.ndarray, np.ndarray]]) -> None:
        if len(frame) == 0:
            return
        seconds = frame.seconds()
        for j, col in enumerate(frame.columns):
            _, labels = parse_series_name(col)
            labels = {k: v for k, v in labels.items() if k != "__name__"}
            labels["service"] = svc.name
            values = frame.values[:, j]
            ok = np.isfinite(values)
            if not ok.any():
                continue
            sid = self._series_id(svc.name, metric, labels)
            info = self._series[sid]
            ts, vals = seconds[ok], values[ok]
            if info.last_ts is not None:
                newer = ts > info.last_ts + 1e-4
                ts, vals = ts[newer], vals[newer]
            if ts.shape[0]:
                out[sid] = (ts, vals)

    def _series_id(self, service: str, metric: str, labels: dict[str, str]) -> int:
        key = tuple(sorted(labels.items()))
        for sid in self._by_query.get((service, metric), []):
            if tuple(sorted(self._series[sid].labels.items())) == key:
                return sid
        rec = self.store.series.upsert(self.tenant, metric, labels, service=service)
        info = self._register(service, metric, rec.id, rec.labels, rec.selector)
        if not self._restored or info.state is None:
            self._load_state(info)
        return rec.id

    def _catch_up(self, pulled: dict[int, tuple[np.ndarray, np.ndarray]], errors: list[str]) -> None:
        """After a restore, pulled series whose stored samples are newer than their saved state are scored from
        the store from that state on (a source such as a scrape endpoint no longer has them); samples pulled again
        take precedence, and storing them again inserts nothing."""
        for info in list(self._series.values()):
            if info.catch_up is None or info.pushed or info.last_ts is None:
                continue
            upto, info.catch_up = info.catch_up, None
            try:
                got = self.store.samples.read(self.tenant, info.id, start=info.last_ts + 1e-3, end=upto + 1e-3)
            except OpsmindError as exc:
                errors.append(f"catch up series {info.id}: {exc}")
                continue
            ok = np.isfinite(got.values) & (got.ts > info.last_ts + 1e-4)
            if not ok.any():
                continue
            stored = dict(zip(got.ts[ok].tolist(), got.values[ok].tolist(), strict=True))
            if info.id in pulled:
                stored.update(zip(pulled[info.id][0].tolist(), pulled[info.id][1].tolist(), strict=True))
            ts = np.array(sorted(stored), dtype=np.float64)
            pulled[info.id] = (ts, np.array([stored[t] for t in ts.tolist()], dtype=np.float64))

    # -- pushed series -------------------------------------------------------------------------------------------
    def _adopt_pushed(self, rec: SeriesRecord) -> _Series:
        """Start tracking a series that only the API writes, with its stored detector state. A series of a
        configured service and metric (stored under the metric's key, e.g. ``rate``) counts as that service's."""
        service = rec.service or "unknown"
        if any(s.name == service and rec.name in s.metrics for s in self.settings.services):
            info = self._register(service, rec.name, rec.id, rec.labels, rec.selector)
            info.pushed = True
        else:
            info = _Series(rec.id, service, rec.name, dict(rec.labels), rec.selector, pushed=True)
            self._series[rec.id] = info
        info.stale = rec.stale_since is not None
        try:
            self._load_state(info)
        except Exception:
            self._forget(rec.id)
            raise
        return info

    def _forget(self, sid: int) -> None:
        info = self._series.pop(sid, None)
        if info is not None and sid in self._by_query.get((info.service, info.metric), []):
            self._by_query[(info.service, info.metric)].remove(sid)

    def _pushed(self, now: float, exclude: set[int], errors: list[str]) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        """New samples of series that only the API writes (see the module docstring): the series whose newest
        stored sample is newer than their last scored one, at most ``pushed_per_cycle`` of them per cycle, taking
        turns by id."""
        out: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        if self.pushed_per_cycle <= 0:
            return out
        try:
            records = self.store.series.list(self.tenant, limit=100_000)
        except OpsmindError as exc:
            errors.append(f"pushed series: {exc}")
            self._count_error("pushed")
            return out
        cands = {r.id: r for r in records if r.id not in exclude
                 and (r.id not in self._series or self._series[r.id].pushed)}
        if not cands:
            return out
        try:
            last_many = getattr(self.store.samples, "last_many", None)
            if last_many is not None:  # one query per 500 series
                lasts: dict[int, tuple[float, float]] = last_many(self.tenant, list(cands))
            else:
                lasts = {sid: last for sid in cands if (last := self.store.samples.last(self.tenant, sid)) is not None}
        except OpsmindError as exc:
            errors.append(f"pushed series: {exc}")
            self._count_error("pushed")
            return out
        def newer(sid: int, ts: float) -> bool:
            info = self._series.get(sid)
            done = [t for t in (None if info is None else info.last_ts, self._pushed_seen.get(sid)) if t is not None]
            return not done or ts > max(done) + 1e-4

        due = sorted(sid for sid, (ts, _) in lasts.items() if sid in cands and newer(sid, ts))
        if not due:
            return out
        first = next((i for i, sid in enumerate(due) if sid > self._pushed_after), 0)  # taking turns
        chosen = [due[(first + i) % len(due)] for i in range(min(self.pushed_per_cycle, len(due)))]
        self._pushed_after = chosen[-1]
        for rec in (cands[sid] for sid in chosen):
            self._pushed_seen[rec.id] = lasts[rec.id][0]  # samples up to here were looked at
            info = self._series.get(rec.id)
            if info is None:
                try:
                    info = self._adopt_pushed(rec)
                except OpsmindError as exc:
                    errors.append(f"pushed series {rec.id}: {exc}")
                    continue
            counter = is_counter(rec.name)
            if info.last_ts is None:
                start = now - self.settings.engine.history_s
            else:  # a counter's rate needs the last sample scored before
                start = info.last_ts - 1e-3 if counter else info.last_ts + 1e-3
            try:
                got = self.store.samples.read(self.tenant, rec.id, start=start)
            except OpsmindError as exc:
                errors.append(f"pushed series {rec.id}: {exc}")
                self._count_error("pushed")
                continue
            ts, values = got.ts, got.values
            if counter:
                ts, values = counter_rate(ts, values)
            ok = np.isfinite(values)
            if info.last_ts is not None:
                ok &= ts > info.last_ts + 1e-4
            if ok.any():
                out[rec.id] = (ts[ok], values[ok])
        return out

    # -- remediation ----------------------------------------------------------------------------------------------
    def _remediate(self, now: float, errors: list[str]) -> None:
        """Queue this cycle's events for the remediator (see :mod:`opsmind.engine.remediation`)."""
        loop = self.remediation
        if loop is None:
            return
        try:
            found: list[tuple[float, int, Event]] = []
            for sid, since in self._cycle_findings:
                info = self._series[sid]
                for rec in self.store.anomalies.list(self.tenant, series_id=sid, since=since, limit=100):
                    found.append((rec.ts, rec.id, anomaly_event(rec, info.service, info.metric, info.labels)))
            anomalies = [ev for _, _, ev in sorted(found, key=lambda x: (x[0], x[1]))]
            load = {s.name: s.roles.get("load", "load") for s in self.settings.services}
            events = loop.events(incidents=self.incidents.firing_incidents(self.tenant), anomalies=anomalies,
                                 store=self.store, tenant=self.tenant, load_metrics=load, now=now)
            loop.submit(events, now)
        except Exception as exc:  # remediation must not stop the engine
            errors.append(f"remediation: {type(exc).__name__}: {exc}")
            self._count_error("remediation")

    # -- detect and record --------------------------------------------------------------------------------------
    def _tasks(self, pulled: Mapping[int, tuple[np.ndarray, np.ndarray]]) -> list[DetectTask]:
        tasks = []
        for sid, (ts, values) in sorted(pulled.items()):
            info = self._series[sid]
            th = self.threshold
            try:
                th = replace(th, threshold=calibrated_threshold(th.threshold, self._feedback(sid)))
            except OpsmindError as exc:
                log.warning("feedback of series %s: %s", sid, exc)
            ctx = np.array(list(info.context), dtype=np.float64).reshape(-1, 2)
            tasks.append(DetectTask(key=sid, spec=self._spec, state=info.state, ts=ts, values=values, threshold=th,
                                    context_ts=ctx[:, 0], context_values=ctx[:, 1]))
        return tasks

    def _feedback(self, sid: int) -> dict[str, int]:
        """The series' feedback counts, read again after ``feedback_ttl_s`` (wall-clock) seconds."""
        hit = self._feedback_cache.get(sid)
        now = time.monotonic()
        if hit is not None and now - hit[0] < self.feedback_ttl_s:
            return hit[1]
        counts = self.store.feedback.counts(self.tenant, sid)
        self._feedback_cache[sid] = (now, counts)
        return counts

    def _detect(self, tasks: list[DetectTask], errors: list[str]) -> list[DetectResult]:
        if not tasks:
            return []
        if self._executor is None:
            self._executor = make_executor(self.settings)
        futures = [(t.key, self._executor.submit(detect_series, t)) for t in tasks]
        results = []
        for key, fut in futures:
            try:
                results.append(fut.result())
            except Exception as exc:  # one series' failure must not stop the others
                errors.append(f"detect series {key}: {type(exc).__name__}: {exc}")
                self._count_error("detect")
        return results

    def _record(self, res: DetectResult, pulled: tuple[np.ndarray, np.ndarray], now: float) -> tuple[int, int]:
        """Samples, anomalies and (when due) the model state of one series, in one transaction."""
        info = self._series[res.key]
        ts, values = pulled
        method = str(self._spec.get("type", "opsmind"))
        items = [AnomalyIn(series_id=info.id, ts=f.ts, probability=min(max(f.probability, 0.0), 1.0),
                           severity=f.severity, score=f.probability, detector="opsmind",
                           evidence=f.evidence(method)) for f in res.findings]
        with self.store.transaction() as tx:
            inserted = 0
            if not info.pushed:  # a pushed series' samples are stored already
                inserted = tx.samples.ingest(self.tenant, [SeriesSamples(info.metric, info.labels, ts, values,
                                                                         service=info.service)]).inserted
            if items:
                tx.anomalies.record_many(self.tenant, items)
            state = {"state": res.state, "kind": method, "trained_at": now, "spec": self._spec,
                     "train_start": res.first_ts, "train_end": res.last_ts, "n_train": res.n_seen}
            every = self.settings.engine.state_every_s
            if info.saved_at is None or every <= 0 or now - info.saved_at >= every - 1e-9 or res.alert != info.alert:
                self._save_state(tx, info.id, state)
                info.saved_at, info.unsaved = now, None
            else:
                info.unsaved = state
        if self.telemetry is not None and not info.pushed:
            self.telemetry.ingested(self.tenant, "pull", inserted)
        info.state, info.last_ts, info.alert, info.probability = res.state, res.last_ts, res.alert, \
            res.last_probability
        info.context.extend(zip(ts.tolist(), values.tolist(), strict=True))
        if res.findings:
            self._cycle_findings.append((info.id, min(f.ts for f in res.findings)))
        return inserted, len(items)

    def _save_state(self, tx: Any, sid: int, state: Mapping[str, Any]) -> None:
        saved = tx.models.save(self.tenant, sid, ROLE, **state)
        if saved.version % _PRUNE_EVERY == 0:
            tx.models.prune(self.tenant, sid, ROLE, keep=_KEEP_STATES)

    def _flush_states(self) -> None:
        """Save every state newer than its last save (on a clean stop: a restart then scores nothing again)."""
        for info in list(self._series.values()):
            if info.unsaved is None:
                continue
            try:
                with self.store.transaction() as tx:
                    self._save_state(tx, info.id, info.unsaved)
                info.unsaved = None
            except OpsmindError as exc:
                log.warning("state of series %s not saved at stop (it is scored again at start): %s", info.id, exc)

    def _store_samples(self, sid: int, pulled: tuple[np.ndarray, np.ndarray], errors: list[str]) -> int:
        info = self._series[sid]
        try:
            result = self.store.samples.ingest(self.tenant, [SeriesSamples(info.metric, info.labels, *pulled,
                                                                           service=info.service)])
        except OpsmindError as exc:
            errors.append(f"record series {sid}: {exc}")
            self._count_error("record")
            return 0
        if self.telemetry is not None:
            self.telemetry.ingested(self.tenant, "pull", result.inserted)
        return result.inserted

    # -- alerts, incidents, RCA ----------------------------------------------------------------------------------
    def _base_url(self) -> str:
        api = self.settings.api
        return f"http://{api.host}:{api.port}" if api.port else ""

    def _anomaly_alerts(self) -> dict[str, Alert]:
        out: dict[str, Alert] = {}
        for info in list(self._series.values()):
            if info.alert is not None:
                alert = anomaly_alert(tenant=self.tenant, series_id=info.id, selector=info.selector,
                                      service=info.service, metric=info.metric, alert=info.alert,
                                      base_url=self._base_url())
                out[alert.fingerprint] = alert
        return out

    def _incidents(self, firing: dict[str, Alert], now: float, errors: list[str]) -> list[str]:
        try:
            records = self.incidents.sync(self.tenant, firing, now)
        except OpsmindError as exc:
            errors.append(f"incidents: {exc}")
            self._count_error("incidents")
            return []
        return [r.key for r in records]

    def _rca(self, now: float, errors: list[str]) -> int:
        rca = self.settings.engine.rca
        done = 0
        for inc in self.incidents.pending_rca(self.tenant, now, rca.window_s):
            try:
                series = self.series_map()
                top, payload = incident_rca(self.store, self.tenant, series, self.incidents.graph, inc.started_at,
                                            rca, changed=self._own_changes(inc.started_at, series),
                                            capacity=self._capacity_metrics())
                self.incidents.attach_rca(self.tenant, inc.id, top, payload)
                done += 1
            except (OpsmindError, ValueError, ArithmeticError) as exc:
                self.incidents.give_up_rca(self.tenant, inc.id)
                errors.append(f"rca {inc.id}: {exc}")
                self._count_error("rca")
        return done

    # -- stale --------------------------------------------------------------------------------------------------
    def _own_changes(self, at: float, series: Mapping[str, Any]) -> dict[str, tuple[float, str]]:
        """What the remediator did to the services around ``at`` (see :func:`opsmind.engine.rca.own_changes`)."""
        if self.remediator is None:
            return {}
        start, end = analysis_window(at, self.settings.engine.rca)
        try:
            runs = self.remediator.ledger.runs(since=start)
        except OpsmindError:
            return {}
        targets = {name: name for name in series}
        for svc in self.settings.services:
            if svc.deployment:
                targets[svc.deployment] = svc.name
        return own_changes(runs, targets, start, end)

    def _capacity_metrics(self) -> dict[str, list[str]]:
        """Each configured service's capacity metrics (its ``cpu`` and ``memory`` roles, by default the metrics of
        those names)."""
        out = {}
        for svc in self.settings.services:
            roles = svc.role_map()
            out[svc.name] = [roles[r] for r in CAPACITY_ROLES if r in roles]
        return out

    def _mark_stale(self, now: float, errors: list[str]) -> int:
        limit = self.settings.engine.stale_after_s
        for info in self._series.values():
            if info.last_ts is None:
                continue
            stale = now - info.last_ts > limit
            if stale == info.stale:
                continue
            try:
                self.store.series.mark_stale(self.tenant, info.id, info.last_ts if stale else None)
                info.stale = stale
            except OpsmindError as exc:
                errors.append(f"stale series {info.id}: {exc}")
        n = sum(s.stale for s in self._series.values())
        if self.telemetry is not None:
            self.telemetry.series_stale(self.tenant, n)
        return n


def _is_outage(exc: SourceError) -> bool:
    """A source that cannot be reached (as opposed to a bad query)."""
    text = str(exc)
    return "failed after" in text or text.startswith("scrape ") or "HTTP 5" in text
