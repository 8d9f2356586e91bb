"""Alerts into stored incidents: one :class:`~opsmind.incidents.correlate.IncidentCorrelator` per tenant, restored
from the store, whose incidents are saved after every change.

Two ways in, both idempotent:

- :meth:`IncidentService.receive`: alerts from outside (the Alertmanager webhook): an alert delivered twice is a
  repeat of the same alert, never a second one;
- :meth:`IncidentService.sync`: the engine's own anomaly alerts, given as the set that is firing now. Alerts new to
  the correlator are added, and alerts the correlator still has firing but that are no longer in the set are
  resolved. An alert that fires again more than the correlator's ``window_s`` after its incident resolved starts
  a new episode: that incident is closed, and the alert opens (or joins) another. Because the set is rebuilt
  from the series' stored state, a restarted engine delivers exactly what it had not delivered before it stopped.

An incident that the correlator merges into another is deleted from the store.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from opsmind.config import Settings
from opsmind.core.alerts import Alert
from opsmind.core.graph import CallGraph
from opsmind.incidents.correlate import Incident, IncidentCorrelator
from opsmind.store import IncidentRecord, NotFoundError, Store

__all__ = ["IncidentService", "call_graph"]


def call_graph(settings: Settings) -> CallGraph:
    """The call graph of the configured services (``ServiceConfig.calls``)."""
    return CallGraph.from_mapping({s.name: s.calls for s in settings.services})


class IncidentService:
    """Correlates alerts into incidents per tenant and keeps the store in step. Thread-safe."""

    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = store
        self.settings = settings
        self.graph = call_graph(settings)
        self._correlators: dict[str, IncidentCorrelator] = {}
        self._lock = threading.RLock()
        self._rca_tried: set[tuple[str, str]] = set()

    def correlator(self, tenant: str) -> IncidentCorrelator:
        """The tenant's correlator, restored from its stored open and resolved incidents on first use."""
        with self._lock:
            corr = self._correlators.get(tenant)
            if corr is None:
                self.store.tenants.ensure(tenant)
                history = self.store.incidents.load(tenant)
                corr = IncidentCorrelator(self.settings.engine.correlator, self.graph, history)
                self._correlators[tenant] = corr
            return corr

    def receive(self, tenant: str, alerts: Sequence[Alert], now: float) -> list[IncidentRecord]:
        """Add alerts from outside (in start order) and save the incidents they touched."""
        with self._lock:
            corr = self.correlator(tenant)
            before = {i.id for i in corr.incidents}
            touched: list[Incident] = []
            for alert in sorted(alerts, key=lambda a: a.starts_at):
                inc = corr.add(alert, at=max(now, alert.starts_at))
                if inc not in touched:
                    touched.append(inc)
            return self._save(tenant, corr, before, touched)

    def sync(self, tenant: str, firing: Mapping[str, Alert], now: float, *,
             alertname: str = "OpsmindAnomaly") -> list[IncidentRecord]:
        """Make the correlator's ``alertname`` alerts match ``firing`` (fingerprint -> alert); see the module
        docstring. Returns the incidents that changed."""
        with self._lock:
            corr = self.correlator(tenant)
            corr.expire(now)
            known: dict[str, Alert] = {}
            owner: dict[str, Incident] = {}
            for inc in corr.incidents:
                if inc.status == "closed":
                    continue
                for fp, tracked in inc.alerts.items():
                    if tracked.alert.name == alertname:
                        known[fp] = tracked.alert
                        owner[fp] = inc
            before = {i.id for i in corr.incidents}
            touched: list[Incident] = []
            new = [a for fp, a in firing.items() if fp not in known or (known[fp].is_resolved(now)
                   and known[fp].starts_at != a.starts_at)]
            window = corr.settings.window_s
            for alert in sorted(new, key=lambda a: a.starts_at):
                old = owner.get(alert.fingerprint)
                if old is not None and old.status == "resolved" and old.resolved_at is not None \
                        and alert.starts_at - old.resolved_at > window:
                    # a new episode of the alert, well after its incident resolved: a new incident, not a reopening
                    old.status = "closed"
                    old.evidence.append(f"closed: {alert.name} on {alert.labels.get('service', '?')} fired again "
                                        f"{alert.starts_at - old.resolved_at:.0f} s after it resolved")
                    touched.append(old)
                inc = corr.add(alert, at=alert.starts_at)
                if inc not in touched:
                    touched.append(inc)
            for fp, alert in known.items():
                if fp in firing or alert.is_resolved(now):
                    continue
                resolved = replace(alert, ends_at=max(now, alert.starts_at), status="resolved")
                inc = corr.add(resolved, at=now)
                if inc not in touched:
                    touched.append(inc)
            return self._save(tenant, corr, before, touched)

    def _save(self, tenant: str, corr: IncidentCorrelator, before: set[str],
              touched: list[Incident]) -> list[IncidentRecord]:
        live = {i.id for i in corr.incidents}
        records = self.store.incidents.save_many(tenant, [i for i in touched if i.id in live])
        for key in sorted(before - live):  # merged into another incident
            with contextlib.suppress(NotFoundError):
                self.store.incidents.delete(tenant, key)
        return records

    def firing_incidents(self, tenant: str) -> list[Incident]:
        """Copies of the open incidents, highest priority first: callers read them (alert labels, the remediator
        in its own thread) while alerts keep arriving, so they get a snapshot taken under the lock."""
        with self._lock:
            return [replace(inc, alerts={fp: replace(t) for fp, t in inc.alerts.items()},
                            services=set(inc.services), evidence=list(inc.evidence))
                    for inc in self.correlator(tenant).open()]

    def firing_series(self, tenant: str, alertname: str) -> set[int]:
        """Series ids (label ``series_id``) of the ``alertname`` alerts firing in the tenant's open incidents."""
        with self._lock:
            out = set()
            for inc in self.correlator(tenant).open():
                for tracked in inc.alerts.values():
                    a = tracked.alert
                    sid = a.labels.get("series_id", "")
                    if a.name == alertname and a.status != "resolved" and a.ends_at is None and sid.isdigit():
                        out.add(int(sid))
            return out

    def pending_rca(self, tenant: str, now: float, delay_s: float) -> list[Incident]:
        """Incidents without a root cause that started at least ``delay_s`` ago and were not analysed yet."""
        with self._lock:
            return [i for i in self.correlator(tenant).incidents
                    if i.rca is None and i.status != "closed" and i.started_at + delay_s <= now
                    and (tenant, i.id) not in self._rca_tried]

    def attach_rca(self, tenant: str, key: str, root_cause: str | None, result: Any) -> IncidentRecord | None:
        """Attach a root-cause result to the incident ``key`` and save it (``None`` if the incident is gone)."""
        with self._lock:
            self._rca_tried.add((tenant, key))
            corr = self.correlator(tenant)
            for inc in corr.incidents:
                if inc.id == key:
                    corr.attach_rca(inc, root_cause, result)
                    return self.store.incidents.save(tenant, inc)
            return None

    def give_up_rca(self, tenant: str, key: str) -> None:
        """Do not try the incident's root-cause analysis again (it failed)."""
        with self._lock:
            self._rca_tried.add((tenant, key))
