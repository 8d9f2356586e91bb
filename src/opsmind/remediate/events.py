"""What a playbook reacts to, in one shape: an incident, an alert, an anomaly, a forecast breach, or a schedule tick.

An :class:`Event` carries an idempotence ``key``, the label sets its matchers test (one per alert), and the
``context`` its placeholders and conditions read (``incident.*``, ``event.*``, ``labels.*``).

>>> from opsmind.core.alerts import Alert
>>> ev = Event.from_alert(Alert(labels={"alertname": "HighLatency", "service": "checkout"}, starts_at=10.0))
>>> ev.kind, ev.service, ev.context["labels"]["alertname"]
('alert', 'checkout', 'HighLatency')
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from opsmind.core.alerts import SEVERITY_RANK, Alert
from opsmind.remediate.playbook import Playbook, matches_all

__all__ = ["Event", "matches"]

_SEVERITIES = ("low", "medium", "high", "critical")


@dataclass(frozen=True)
class Event:
    kind: str  # incident | alert | anomaly | forecast | schedule
    key: str
    at: float
    service: str | None = None
    metric: str | None = None
    severity: str | None = None
    priority: str | None = None
    label_sets: tuple[Mapping[str, str], ...] = ()
    context: Mapping[str, Any] = field(default_factory=dict)
    breach_in_s: float | None = None

    # -- constructors --------------------------------------------------------------------------------------------
    @classmethod
    def from_incident(cls, incident: Any, at: float | None = None) -> Event:
        """From an :class:`~opsmind.incidents.correlate.Incident` or a stored ``IncidentRecord``."""
        key = str(getattr(incident, "key", None) or incident.id)
        services = sorted(incident.services)
        alerts = incident.alerts.values() if isinstance(incident.alerts, Mapping) else incident.alerts
        raw = [dict(a.alert.labels) if hasattr(a, "alert") else dict(a.labels) for a in alerts]
        extra = {"incident": key, "priority": incident.priority, "root_cause": incident.root_cause or ""}
        label_sets = tuple({**labels, **extra} for labels in raw) or (extra,)
        service = incident.root_cause or (services[0] if services else None)
        common = {k: v for k, v in raw[0].items() if all(r.get(k) == v for r in raw)} if raw else {}
        ctx = {"incident": {"key": key, "id": key, "title": incident.title, "priority": incident.priority,
                            "root_cause": incident.root_cause, "service": service, "services": services,
                            "severity": incident.severity, "score": incident.score, "labels": common},
               "event": {"kind": "incident", "key": key, "service": service}, "labels": common}
        when = float(incident.last_activity if at is None else at)
        return cls("incident", f"incident:{key}", when, service=service, priority=incident.priority,
                   label_sets=label_sets, context=ctx)

    @classmethod
    def from_alert(cls, alert: Alert, at: float | None = None) -> Event:
        labels = dict(alert.labels)
        service = alert.service()
        sev = labels.get("severity")
        ctx = {"event": {"kind": "alert", "key": alert.fingerprint, "service": service, "severity": sev},
               "labels": labels, "incident": {"service": service, "root_cause": service, "labels": labels}}
        return cls("alert", f"alert:{alert.fingerprint}:{alert.starts_at:g}", alert.starts_at if at is None else at,
                   service=service, severity=sev, label_sets=(labels,), context=ctx)

    @classmethod
    def from_anomaly(cls, anomaly_id: int, *, service: str, metric: str, severity: str, at: float,
                     labels: Mapping[str, str] | None = None, value: float | None = None) -> Event:
        lab = {**(labels or {}), "service": service, "metric": metric}
        ctx = {"event": {"kind": "anomaly", "key": str(anomaly_id), "service": service, "metric": metric,
                         "severity": severity, "value": value},
               "labels": lab, "incident": {"service": service, "root_cause": service, "labels": lab}}
        return cls("anomaly", f"anomaly:{anomaly_id}", at, service=service, metric=metric, severity=severity,
                   label_sets=(lab,), context=ctx)

    @classmethod
    def from_forecast(cls, *, service: str, metric: str, breach_at: float, at: float,
                      labels: Mapping[str, str] | None = None, key: str | None = None) -> Event:
        lab = {**(labels or {}), "service": service, "metric": metric}
        k = key or f"{service}:{metric}:{int(breach_at)}"
        ctx = {"event": {"kind": "forecast", "key": k, "service": service, "metric": metric,
                         "breach_at": breach_at, "breach_in_s": breach_at - at},
               "labels": lab, "incident": {"service": service, "root_cause": service, "labels": lab}}
        return cls("forecast", f"forecast:{k}", at, service=service, metric=metric, label_sets=(lab,), context=ctx,
                   breach_in_s=breach_at - at)

    @classmethod
    def tick(cls, at: float) -> Event:
        """A schedule tick at ``at`` (the runner keys each playbook's run by its interval slot)."""
        return cls("schedule", "schedule", at, context={"event": {"kind": "schedule", "at": at}})

    def key_for(self, playbook: Playbook) -> str:
        """The idempotence key of this event for ``playbook`` (a schedule's is its interval slot)."""
        sched = playbook.trigger.schedule
        if self.kind == "schedule" and sched is not None:
            return f"schedule:{int(self.at // sched.every_s)}"
        return self.key

    def context_for(self, playbook: Playbook) -> dict[str, Any]:
        return {**self.context, "playbook": {"name": playbook.name, "risk": playbook.risk}}


def _sev_ok(have: str | None, least: str) -> bool:
    if have is None:
        return False
    rank = {"low": 0, "medium": 1, "high": 2, "critical": 3}
    if have in rank:
        return rank[have] >= rank[least]
    return SEVERITY_RANK.get(have, 2) - 1 >= rank[least]


def _name_ok(pattern: str, value: str | None) -> bool:
    return pattern == "*" or pattern == value


def matches(playbook: Playbook, event: Event) -> bool:
    """Whether the event triggers the playbook (trigger and every condition)."""
    if not playbook.enabled or playbook.trigger.kind != event.kind:
        return False
    t = playbook.trigger
    if t.incident is not None:
        prio = event.priority or "P4"
        if int(prio[1]) > int(t.incident.min_priority[1]):
            return False
        if not any(matches_all(t.incident.match, ls) for ls in event.label_sets):
            return False
    elif t.alert is not None:
        if not any(matches_all(t.alert.match, ls) for ls in event.label_sets):
            return False
    elif t.anomaly is not None:
        if not (_name_ok(t.anomaly.service, event.service) and _name_ok(t.anomaly.metric, event.metric)
                and _sev_ok(event.severity, t.anomaly.min_severity)):
            return False
    elif t.forecast is not None and not (
            _name_ok(t.forecast.service, event.service) and _name_ok(t.forecast.metric, event.metric)
            and event.breach_in_s is not None and event.breach_in_s <= t.forecast.within_s):
        return False
    ctx = event.context_for(playbook)
    return all(c.holds(ctx) for c in playbook.conditions)


def matching(playbooks: Sequence[Playbook], event: Event) -> list[Playbook]:
    return [p for p in playbooks if matches(p, event)]
