"""The engine's remediation: hand what a cycle found to the :class:`~opsmind.remediate.Remediator`, in a thread of
its own.

:func:`build_remediator` makes the remediator a configuration asks for (``remediation.playbooks``): one executor
per action kind the playbooks use (:func:`~opsmind.remediate.executors.build_executor` with
``remediation.executors[kind]``) and a :class:`~opsmind.remediate.PrometheusVerifier` when ``prometheus`` is
configured (without one, a playbook that asks for verification fails safe: its actions are rolled back).

:class:`RemediationLoop` runs it. After each cycle has saved its incidents, the engine collects the events
(:meth:`RemediationLoop.events`: every open incident, the anomalies recorded in the cycle, and capacity
recommendations that predict a breach) and :meth:`~RemediationLoop.submit` queues them with the cycle's time; the
worker thread hands each to :meth:`Remediator.handle` and then calls :meth:`Remediator.tick`. A verification may
wait ``within_s`` for its query to recover; that wait is the worker's, never the detection cycle's. While the
worker is busy, newer cycles' events are merged into one pending batch (the latest version of each event).

Each event is handed once per version: an incident again when its priority, root cause or services change (so a
playbook that needs the root cause runs once the RCA is there), an anomaly or a forecast once. A playbook that
already has a run for an event (any status except ``blocked``) is not asked again, and that is read from the
ledger in the store: a restarted engine starts no second run for the same incident. A failure is counted
(``opsmind_engine_errors{stage="remediation"}``), logged, and never stops the engine or the worker.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from opsmind.config import Settings
from opsmind.remediate import Event, Remediator, RunRecord
from opsmind.remediate.events import matching
from opsmind.remediate.executors import build_executor
from opsmind.remediate.executors.base import Executor
from opsmind.remediate.playbook import Playbook, load_playbooks
from opsmind.remediate.verify import PrometheusVerifier, Verifier
from opsmind.store import AnomalyRecord, Store
from opsmind.telemetry import Telemetry

__all__ = ["RemediationLoop", "anomaly_event", "build_remediator", "playbook_kinds"]

log = logging.getLogger("opsmind.engine.remediation")

_SEEN_MAX = 20_000  # event versions remembered (the oldest are forgotten first)


def playbook_kinds(playbooks: Iterable[Playbook]) -> list[str]:
    """Every action kind the playbooks use (forward and rollback actions)."""
    return sorted({a.kind for pb in playbooks for a in [*pb.actions, *pb.rollback.actions]})


def build_remediator(settings: Settings, store: Store, *, playbooks: Sequence[Playbook] | None = None,
                     executors: Mapping[str, Executor] | None = None, verifier: Verifier | None = None,
                     ) -> Remediator:
    """The remediator of ``settings.remediation`` (see the module docstring); ``ConfigError`` for a malformed
    playbook or executor setting. ``playbooks``, ``executors`` and ``verifier`` replace what the configuration
    would give."""
    r = settings.remediation
    pbs = list(playbooks) if playbooks is not None else load_playbooks(r.playbooks)
    if executors is None:
        executors = {kind: build_executor(kind, r.executors.get(kind)) for kind in playbook_kinds(pbs)}
    if verifier is None and settings.prometheus is not None:
        from opsmind.sources.prometheus import Prometheus

        verifier = PrometheusVerifier(Prometheus(settings.prometheus), services=settings.services)
    return Remediator(settings, store, executors, verifier, playbooks=pbs)


def anomaly_event(rec: AnomalyRecord, service: str, metric: str, labels: Mapping[str, str]) -> Event:
    """The event of a stored anomaly; besides what :meth:`Event.from_anomaly` gives, ``event.baseline`` (the
    expected value from the anomaly's evidence) and ``event.ratio`` (value / baseline) when both are known, so a
    playbook can ask for a large change (``event.ratio > 1.05``) or compare with normal in its verification."""
    ev = rec.evidence if isinstance(rec.evidence, dict) else {}
    value, baseline = ev.get("value"), ev.get("baseline")
    event = Event.from_anomaly(rec.id, service=service, metric=metric, severity=rec.severity or "low", at=rec.ts,
                               labels=labels, value=value)
    extra: dict[str, Any] = {}
    if isinstance(baseline, int | float) and math.isfinite(baseline):
        extra["baseline"] = float(baseline)
        if isinstance(value, int | float) and math.isfinite(value) and baseline != 0:
            extra["ratio"] = float(value) / float(baseline)
    if not extra:
        return event
    context = {**event.context, "event": {**event.context["event"], **extra}}
    return replace(event, context=context)


def _signature(event: Event) -> Hashable:
    """What makes a new version of an event worth handing again."""
    if event.kind == "incident":
        inc = event.context.get("incident", {})
        return (event.priority, inc.get("root_cause"), tuple(inc.get("services") or ()))
    return event.key


class RemediationLoop:
    """Feeds a :class:`Remediator` from the engine's cycles in a worker thread (see the module docstring)."""

    def __init__(self, remediator: Remediator, *, telemetry: Telemetry | None = None) -> None:
        self.remediator = remediator
        self.telemetry = telemetry
        self.runs: list[RunRecord] = []  # every run this loop started or resumed (newest last)
        self.handled = 0
        self.errors = 0
        self.last_error: str | None = None
        self._seen: OrderedDict[str, Hashable] = OrderedDict()
        self._forecasts: set[tuple[int, float]] = set()
        self._cond = threading.Condition()
        self._pending: OrderedDict[str, Event] = OrderedDict()
        self._pending_now: float | None = None
        self._busy = False
        self._stop = False
        self._thread: threading.Thread | None = None

    # -- collecting (in the engine's thread) -------------------------------------------------------------------
    def events(self, *, incidents: Iterable[Any], anomalies: Iterable[Event], store: Store, tenant: str,
               load_metrics: Mapping[str, str], now: float) -> list[Event]:
        """This cycle's events: open incidents, the anomaly events given, and new capacity breaches."""
        out = [Event.from_incident(inc, at=now) for inc in incidents]
        out.extend(anomalies)
        for rec in store.recommendations.list(tenant, kind="capacity", limit=100):
            payload = rec.payload if isinstance(rec.payload, dict) else {}
            breach_at = payload.get("breach_at")
            if not payload.get("breach") or not isinstance(breach_at, int | float) or rec.service is None:
                continue
            if (rec.id, float(breach_at)) in self._forecasts:
                continue
            self._forecasts.add((rec.id, float(breach_at)))
            metric = load_metrics.get(rec.service, "load")
            out.append(Event.from_forecast(service=rec.service, metric=metric, breach_at=float(breach_at), at=now,
                                           labels={"kind": "capacity", "target": rec.target}))
        return out

    # -- the worker ---------------------------------------------------------------------------------------------
    def submit(self, events: Sequence[Event], now: float) -> None:
        """Queue a cycle's events (merged with a batch still waiting) and its time; starts the worker."""
        with self._cond:
            for ev in events:
                self._pending.pop(ev.key, None)
                self._pending[ev.key] = ev
            self._pending_now = now if self._pending_now is None else max(self._pending_now, now)
            self._cond.notify_all()
        self.start()

    def start(self) -> None:
        with self._cond:
            if self._thread is not None and self._thread.is_alive():
                return
            self._stop = False
            self._thread = threading.Thread(target=self._loop, name="opsmind-remediation", daemon=True)
            self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop the worker after its current batch (a verification in progress is waited for up to
        ``timeout_s``; the thread is a daemon)."""
        with self._cond:
            self._stop = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(timeout=timeout_s)
        self._thread = None

    def idle(self) -> bool:
        """Nothing queued and nothing being handled."""
        with self._cond:
            return not self._busy and self._pending_now is None

    def wait_idle(self, timeout_s: float | None = None) -> bool:
        """Wait until :meth:`idle` (True) or ``timeout_s`` passed (False)."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        with self._cond:
            while self._busy or self._pending_now is not None:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._cond.wait(timeout=left)
            return True

    def process(self, events: Sequence[Event], now: float) -> list[RunRecord]:
        """Hand ``events`` to the remediator and tick it, in the calling thread (what the worker does)."""
        rem = self.remediator
        out: list[RunRecord] = []
        fresh = [ev for ev in events if self._seen.get(ev.key) != _signature(ev)]
        if fresh:
            done = {(r.playbook, r.event_key) for r in rem.ledger.runs() if r.status != "blocked"}
            for ev in fresh:
                self._remember(ev)
                names = [p.name for p in matching(rem.playbooks, ev) if (p.name, ev.key_for(p)) not in done]
                if not names:
                    continue
                try:
                    runs = rem.handle(ev, now, only=names)
                except Exception as exc:  # one event's failure must not stop the others
                    self._failed(f"handle {ev.key}", exc)
                    continue
                self.handled += 1
                done.update((r.playbook, r.event_key) for r in runs if r.status != "blocked")
                out.extend(runs)
        try:
            out.extend(rem.tick(now))
        except Exception as exc:
            self._failed("tick", exc)
        self.runs.extend(out)
        del self.runs[:-1000]
        return out

    def _remember(self, ev: Event) -> None:
        self._seen.pop(ev.key, None)
        self._seen[ev.key] = _signature(ev)
        while len(self._seen) > _SEEN_MAX:
            self._seen.popitem(last=False)

    def _failed(self, what: str, exc: BaseException) -> None:
        self.errors += 1
        self.last_error = f"remediation {what}: {type(exc).__name__}: {exc}"
        log.error("%s", self.last_error, exc_info=exc)
        if self.telemetry is not None:
            self.telemetry.error("remediation")

    def _loop(self) -> None:
        while True:
            with self._cond:
                while self._pending_now is None and not self._stop:
                    self._cond.wait()
                if self._stop:
                    return
                events = list(self._pending.values())
                now = self._pending_now
                self._pending.clear()
                self._pending_now = None
                self._busy = True
            try:
                assert now is not None
                self.process(events, now)
            except Exception as exc:  # the worker must survive anything a batch does
                self._failed("batch", exc)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()
