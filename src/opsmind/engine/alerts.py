"""The alerts opsmind raises: one ``OpsmindAnomaly`` per series whose alert is open, one ``OpsmindIncident`` per
open incident, labelled as the shared contract says (``alertname``, ``series``/``series_id`` or ``incident``,
``service``, ``severity``, ``tenant``; annotations ``summary``, ``description``, ``opsmind_url``)."""

from __future__ import annotations

from opsmind.core.alerts import Alert
from opsmind.engine.detection import OpenAlert
from opsmind.incidents.correlate import Incident

__all__ = ["PRIORITY_SEVERITY", "anomaly_alert", "incident_alert", "opening_service"]

PRIORITY_SEVERITY = {"P1": "critical", "P2": "high", "P3": "medium", "P4": "low"}


def anomaly_alert(*, tenant: str, series_id: int, selector: str, service: str, metric: str, alert: OpenAlert,
                  base_url: str) -> Alert:
    """The firing alert of one anomalous series (its identity: the series; it starts when the anomaly opened)."""
    labels = {"alertname": "OpsmindAnomaly", "series": selector, "series_id": str(series_id), "service": service,
              "severity": alert.severity, "tenant": tenant}
    return Alert(labels=labels, starts_at=alert.started_at, annotations={
        "summary": f"{metric} of {service} is anomalous",
        "description": f"{selector}: anomaly probability {alert.probability:.2f} ({alert.severity})",
        "opsmind_url": f"{base_url}/#/series/{series_id}"})


def opening_service(inc: Incident) -> str:
    """The service of the alert that opened the incident (the first one the correlator took)."""
    tracked = [t for t in inc.alerts.values() if t.service]
    if tracked:
        return min(tracked, key=lambda t: (t.first_seen, t.alert.starts_at, t.alert.fingerprint)).service
    return sorted(inc.services)[0] if inc.services else ""


def incident_alert(inc: Incident, *, tenant: str, base_url: str) -> Alert:
    """The firing alert of an open incident.

    Its labels are its identity (Alertmanager's fingerprint), so they change only when they must: ``service`` is
    the service of the alert that opened the incident (the root cause, found a few minutes later, and the services
    that join are in the annotations), and ``severity`` follows the priority, which only rises, so a changed label
    set means an escalation worth announcing again."""
    labels = {"alertname": "OpsmindIncident", "incident": inc.id, "service": opening_service(inc),
              "severity": PRIORITY_SEVERITY.get(inc.priority, "medium"), "tenant": tenant}
    cause = f"; root cause {inc.root_cause}" if inc.root_cause else ""
    annotations = {
        "summary": f"{inc.priority} incident: {inc.title}",
        "description": f"{len(inc.alerts)} alert(s) on {', '.join(sorted(inc.services))}{cause}",
        "opsmind_url": f"{base_url}/#/incidents/{inc.id}"}
    if inc.root_cause:
        annotations["root_cause"] = inc.root_cause
    return Alert(labels=labels, starts_at=inc.started_at, annotations=annotations)
