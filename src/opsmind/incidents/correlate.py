"""Alerts into incidents: deduplicated by fingerprint, grouped by labels, time and topology, prioritised, and
linked to earlier incidents with the same signature.

Rules (each decision is recorded in the incident's ``evidence``):

* **Deduplication.** Alerts with the same labels (the same Alertmanager fingerprint) are one alert: a repeat
  updates its end time, status and annotations, and counts as a repeat, never as a second alert. An alert that
  fires again (a new start time) more than ``window_s`` after it resolved is a new episode, grouped afresh: it
  joins its old incident only if that one would take it as a new alert, so a later failure is not hidden inside
  an earlier incident that other alerts keep open.
* **Grouping.** An alert joins an open incident when (1) the labels named in ``group_by`` agree where both have
  them, (2) it starts within ``window_s`` of the incident's latest activity, and (3) its service is in the
  incident or within ``max_hops`` calls of one of its services in the call graph. Without a call graph, (3) asks
  for the same service or the same alert name. An alert that fits several incidents merges them.
* **Priority.** ``score = 0.5 * severity/4 + 0.3 * blast radius + 0.2 * SLO impact``, where blast radius is the
  share of services affected, counting every service that calls an affected one (directly or not), and SLO impact
  is 1 when an alert names an SLO (an ``slo`` label or an alert name about an SLO, burn rate or error budget),
  0.5 when an entry service (one nobody calls) is affected, else 0. P1 from 0.75, P2 from 0.5, P3 from 0.3, P4 below.
* **Signature and recurrence.** The signature is the set of (alert name, service) pairs. An incident whose
  signature has Jaccard similarity >= ``recurrence_similarity`` with an earlier, no longer open one (and the same
  root cause when both have an RCA result attached) is linked to the most recent such incident.
* An incident resolves when all its alerts are resolved; one with no activity for ``close_after_s`` is closed.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from opsmind.core.alerts import Alert
from opsmind.core.graph import CallGraph

__all__ = ["CallGraph", "CorrelatorSettings", "Incident", "IncidentCorrelator", "TrackedAlert", "graph_from_mapping"]

_SLO_NAME = re.compile(r"slo|burn|budget", re.IGNORECASE)
Priority = Literal["P1", "P2", "P3", "P4"]


class CorrelatorSettings(BaseModel):
    """How alerts become incidents."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    window_s: float = Field(600.0, gt=0, description="An alert joins an incident active within this many seconds.")
    group_by: tuple[str, ...] = Field(("cluster", "namespace", "env"), description="Labels that must agree to group.")
    service_labels: tuple[str, ...] = Field(("service", "app", "job", "deployment", "container"),
                                            description="Labels naming the service, first present wins.")
    max_hops: int = Field(1, ge=0, le=10, description="Call-graph distance within which alerts group.")
    close_after_s: float = Field(3600.0, gt=0, description="Close an incident with no activity for this long.")
    recurrence_similarity: float = Field(0.6, gt=0, le=1, description="Signature overlap that marks a recurrence.")


@dataclass
class TrackedAlert:
    """One distinct alert (one fingerprint) in an incident, with how often it was seen."""

    alert: Alert
    service: str
    first_seen: float
    last_seen: float
    repeats: int = 0


@dataclass
class Incident:
    """A group of related alerts with its priority, signature, evidence and (when attached) its root cause."""

    id: str
    started_at: float
    last_activity: float
    alerts: dict[str, TrackedAlert] = field(default_factory=dict)
    services: set[str] = field(default_factory=set)
    status: Literal["open", "resolved", "closed"] = "open"
    resolved_at: float | None = None
    priority: Priority = "P4"
    score: float = 0.0
    severity: int = 0
    blast_radius: float = 0.0
    slo_impact: float = 0.0
    recurrence_of: str | None = None
    root_cause: str | None = None
    rca: Any = None
    evidence: list[str] = field(default_factory=list)

    @property
    def signature(self) -> frozenset[str]:
        """The (alert name, service) pairs, as ``name@service``: what recurrences are matched on."""
        return frozenset(f"{t.alert.name}@{t.service}" for t in self.alerts.values())

    @property
    def title(self) -> str:
        names = sorted({t.alert.name for t in self.alerts.values()})
        where = ", ".join(sorted(self.services)) or "unknown service"
        return f"{' + '.join(names[:3])}{' ...' if len(names) > 3 else ''} on {where}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "title": self.title, "status": self.status, "priority": self.priority,
            "score": round(self.score, 4), "started_at": self.started_at, "last_activity": self.last_activity,
            "resolved_at": self.resolved_at, "services": sorted(self.services), "severity": self.severity,
            "blast_radius": round(self.blast_radius, 4), "slo_impact": self.slo_impact,
            "recurrence_of": self.recurrence_of, "root_cause": self.root_cause,
            "alerts": [{"fingerprint": fp, "labels": dict(t.alert.labels), "status": t.alert.status,
                        "starts_at": t.alert.starts_at, "ends_at": t.alert.ends_at, "repeats": t.repeats}
                       for fp, t in self.alerts.items()],
            "evidence": list(self.evidence),
        }


class IncidentCorrelator:
    """Feed alerts in time order with :meth:`add`; read :attr:`incidents`. No clock: times come with the alerts."""

    def __init__(self, settings: CorrelatorSettings | None = None, graph: CallGraph | None = None,
                 history: Sequence[Incident] = ()) -> None:
        self.settings = settings or CorrelatorSettings()
        self.graph = graph or CallGraph()
        self.incidents: list[Incident] = list(history)
        self._by_fp: dict[str, Incident] = {}
        for inc in self.incidents:
            if inc.status == "open":
                for fp in inc.alerts:
                    self._by_fp[fp] = inc

    # -- public -------------------------------------------------------------------------------------------------
    def add(self, alert: Alert, at: float | None = None) -> Incident:
        """Take one alert (firing or resolved) seen at ``at`` (default: its start); return its incident."""
        now = alert.starts_at if at is None else at
        self.expire(now)
        service = alert.service(self.settings.service_labels) or ""
        fp = alert.fingerprint
        known = self._by_fp.get(fp)
        if known is not None and self._new_episode(known.alerts[fp].alert, alert):
            del self._by_fp[fp]  # grouped afresh, like an alert never seen
            known = None
        if known is not None and known.status != "closed":
            tracked = known.alerts[fp]
            tracked.alert = alert
            tracked.last_seen = max(tracked.last_seen, now)
            tracked.repeats += 1
            known.last_activity = max(known.last_activity, now)
            if alert.status == "resolved" or alert.ends_at is not None:
                self._maybe_resolve(known, now)
            elif known.status == "resolved":
                known.status, known.resolved_at = "open", None
                known.evidence.append(f"reopened: {alert.name} firing again")
            self._score(known)
            return known
        matches = [inc for inc in self.incidents if inc.status == "open" and self._fits(inc, alert, service, now)]
        if matches:
            target = matches[0]
            for other in matches[1:]:
                self._merge(target, other)
            target.evidence.append(f"{alert.name} on {service or '?'} joined: {self._why(target, alert, service)}")
        else:
            target = Incident(id=self._new_id(fp, alert.starts_at), started_at=alert.starts_at, last_activity=now)
            target.evidence.append(f"opened by {alert.name} on {service or '?'}")
            self.incidents.append(target)
        old = target.alerts.get(fp)  # a new episode rejoining its incident keeps its place (first seen, repeats)
        target.alerts[fp] = TrackedAlert(alert, service, now, now) if old is None else \
            TrackedAlert(alert, service, old.first_seen, now, old.repeats + 1)
        if service:
            target.services.add(service)
        target.started_at = min(target.started_at, alert.starts_at)
        target.last_activity = max(target.last_activity, now)
        self._by_fp[fp] = target
        if alert.status == "resolved" or alert.ends_at is not None:
            self._maybe_resolve(target, now)
        self._score(target)
        self._link_recurrence(target)
        return target

    def add_all(self, alerts: Iterable[Alert]) -> list[Incident]:
        touched: list[Incident] = []
        for alert in sorted(alerts, key=lambda a: a.starts_at):
            inc = self.add(alert)
            if inc not in touched:
                touched.append(inc)
        return touched

    def attach_rca(self, incident: Incident, root_cause: str | None, result: Any = None) -> None:
        """Attach a root-cause result (e.g. :class:`opsmind.rca` output) and its top service."""
        incident.rca = result
        incident.root_cause = root_cause
        if root_cause:
            incident.evidence.append(f"root cause attached: {root_cause}")
        self._link_recurrence(incident, force=True)

    def expire(self, now: float) -> None:
        """Close incidents with no activity for ``close_after_s``."""
        for inc in self.incidents:
            if inc.status != "closed" and now - inc.last_activity > self.settings.close_after_s:
                inc.status = "closed"
                inc.evidence.append(f"closed after {self.settings.close_after_s:g} s without activity")
                for fp in inc.alerts:
                    if self._by_fp.get(fp) is inc:
                        del self._by_fp[fp]

    def open(self) -> list[Incident]:
        """Open incidents, highest priority first."""
        return sorted((i for i in self.incidents if i.status == "open"), key=lambda i: -i.score)

    # -- rules --------------------------------------------------------------------------------------------------
    def _new_episode(self, before: Alert, alert: Alert) -> bool:
        """``alert`` fires again (a new start) more than ``window_s`` after its last episode resolved."""
        return (before.ends_at is not None and alert.status != "resolved" and alert.ends_at is None
                and alert.starts_at != before.starts_at and alert.starts_at - before.ends_at > self.settings.window_s)

    def _fits(self, inc: Incident, alert: Alert, service: str, now: float) -> bool:
        if alert.starts_at - inc.last_activity > self.settings.window_s and now - inc.last_activity > \
                self.settings.window_s:
            return False
        for key in self.settings.group_by:
            mine = alert.labels.get(key)
            if mine is None:
                continue
            theirs = {t.alert.labels.get(key) for t in inc.alerts.values()} - {None}
            if theirs and mine not in theirs:
                return False
        if not service or not inc.services:
            return any(t.alert.name == alert.name for t in inc.alerts.values())
        if service in inc.services:
            return True
        if self.graph:
            return any(self.graph.distance(service, s, self.settings.max_hops) is not None for s in inc.services)
        return any(t.alert.name == alert.name for t in inc.alerts.values())

    def _why(self, inc: Incident, alert: Alert, service: str) -> str:
        if service in inc.services:
            return "same service"
        if self.graph:
            for s in sorted(inc.services):
                d = self.graph.distance(service, s, self.settings.max_hops)
                if d is not None:
                    return f"{d} call(s) from {s}"
        return f"same alert name {alert.name}"

    def _merge(self, into: Incident, other: Incident) -> None:
        into.alerts.update(other.alerts)
        into.services |= other.services
        into.started_at = min(into.started_at, other.started_at)
        into.last_activity = max(into.last_activity, other.last_activity)
        into.evidence.append(f"merged {other.id} (an alert linked both)")
        for fp in other.alerts:
            self._by_fp[fp] = into
        self.incidents.remove(other)

    def _maybe_resolve(self, inc: Incident, now: float) -> None:
        if all(t.alert.is_resolved(now) for t in inc.alerts.values()) and inc.status == "open":
            inc.status = "resolved"
            inc.resolved_at = max((t.alert.ends_at or now) for t in inc.alerts.values())
            inc.evidence.append("resolved: every alert resolved")

    def _score(self, inc: Incident) -> None:
        alerts = [t.alert for t in inc.alerts.values()]
        inc.severity = max((a.severity for a in alerts), default=0)
        universe = self.graph.services | inc.services
        if self.graph:
            affected = self.graph.upstream(inc.services)
            inc.blast_radius = len(affected) / max(len(universe), 1)
        else:
            inc.blast_radius = min(len(inc.services) / 10.0, 1.0)  # no graph: count services, saturating at ten
        slo = any("slo" in a.labels or _SLO_NAME.search(a.name) for a in alerts)
        entry = bool(self.graph) and bool(inc.services & self.graph.entries())
        inc.slo_impact = 1.0 if slo else 0.5 if entry else 0.0
        inc.score = 0.5 * inc.severity / 4.0 + 0.3 * inc.blast_radius + 0.2 * inc.slo_impact
        inc.priority = "P1" if inc.score >= 0.75 else "P2" if inc.score >= 0.5 else "P3" if inc.score >= 0.3 else "P4"

    def _link_recurrence(self, inc: Incident, force: bool = False) -> None:
        """Link ``inc`` to the latest earlier incident with a similar signature (and the same root cause, when
        both have one). ``force`` re-decides an existing link, e.g. once a root cause is attached."""
        if inc.recurrence_of is not None and not force:
            return
        sig = inc.signature
        best: Incident | None = None
        for earlier in self.incidents:
            if earlier is inc or earlier.started_at >= inc.started_at or earlier.status == "open":
                continue
            if inc.root_cause and earlier.root_cause and inc.root_cause != earlier.root_cause:
                continue
            other = earlier.signature
            sim = len(sig & other) / len(sig | other) if sig | other else 0.0
            if sim >= self.settings.recurrence_similarity and (best is None or earlier.started_at > best.started_at):
                best = earlier
        new = best.id if best is not None else None
        if new != inc.recurrence_of:
            inc.evidence.append(f"recurrence of {new} (same signature)" if new else
                                f"not a recurrence of {inc.recurrence_of} after all (different root cause)")
            inc.recurrence_of = new

    @staticmethod
    def _new_id(fp: str, start: float) -> str:
        return "inc-" + hashlib.sha1(f"{fp}:{start:.3f}".encode()).hexdigest()[:10]


def graph_from_mapping(calls: Mapping[str, Sequence[str]]) -> CallGraph:
    """A call graph from ``{caller: [callee, ...]}``."""
    return CallGraph.from_mapping(calls)
