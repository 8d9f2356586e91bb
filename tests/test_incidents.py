"""Alerts and incidents: Alertmanager's fingerprint and webhook payloads against a real Alertmanager; grouping by
labels, time and call graph; priority; recurrence; bad payloads."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opsmind.core import DataError
from opsmind.core.alerts import Alert, fingerprint
from opsmind.incidents import CallGraph, CorrelatorSettings, IncidentCorrelator
from opsmind.sources.alertmanager import Alertmanager, AlertmanagerSettings, parse_webhook
from servers import AlertmanagerProcess, Reply, ScriptedServer

T0 = 1_800_000_000.0

# checkout calls payment and shipping; frontend calls checkout and catalog; ads stands alone.
GRAPH = CallGraph.from_edges([("frontend", "checkout"), ("frontend", "catalog"), ("checkout", "payment"),
                   ("checkout", "shipping"), ("ads", "ads-db")])


def alert(name: str, service: str, t: float, **labels: str) -> Alert:
    return Alert(labels={"alertname": name, "service": service, **labels}, starts_at=t)


LABEL_SETS: list[dict[str, str]] = [
    {"alertname": "HighLatency", "service": "checkout"},
    {"alertname": "A"},
    {"alertname": "Disk", "instance": "10.0.0.1:9100", "severity": "critical", "mountpoint": "/var/lib"},
    {"alertname": "Ünïcode", "team": "café ☕", "zz": "", "a_b": "x=y,z"},
]


@pytest.mark.integration
def test_fingerprint_and_dedup_match_a_real_alertmanager(alertmanager: AlertmanagerProcess) -> None:
    with Alertmanager(AlertmanagerSettings(url=alertmanager.url, retries=1)) as am:
        now = time.time()
        sent = [Alert(labels=ls, starts_at=now - 60) for ls in LABEL_SETS]
        am.post_alerts(sent)
        am.post_alerts(sent[:1])  # a repeat of the same labels is the same alert
        theirs = {}
        for _ in range(50):
            theirs = am.fingerprints()
            if len(theirs) == len(LABEL_SETS):
                break
            time.sleep(0.1)
        assert len(theirs) == len(LABEL_SETS)
        for ls in LABEL_SETS:
            assert theirs[fingerprint(ls)] == fingerprint(ls), ls
        assert fingerprint(LABEL_SETS[3]) == fingerprint({k: v for k, v in LABEL_SETS[3].items() if v})
        got, warnings = am.alerts()
        assert not warnings and {a.fingerprint for a in got} == {fingerprint(ls) for ls in LABEL_SETS}
        # resolving: an end time in the past resolves the alert in Alertmanager
        am.post_alerts([Alert(labels=LABEL_SETS[1], starts_at=now - 60, ends_at=now - 1)])
        active, _ = am.alerts(active=True)
        assert fingerprint(LABEL_SETS[1]) not in {a.fingerprint for a in active}


@pytest.mark.integration
def test_webhook_payload_from_a_real_alertmanager_opens_one_incident(alertmanager_bin: str,
                                                                       tmp_path: Any) -> None:
    with ScriptedServer([Reply(200, "{}")]) as receiver:
        server = AlertmanagerProcess(alertmanager_bin, tmp_path, webhook_url=f"{receiver.url}/hook")
        server.start()
        try:
            with Alertmanager(AlertmanagerSettings(url=server.url)) as am:
                now = time.time()
                am.post_alerts([alert("HighLatency", "checkout", now - 30, severity="critical"),
                                alert("HighLatency", "checkout", now - 30, severity="critical"),
                                alert("ErrorRate", "payment", now - 20)])
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline and len(receiver.seen) < 2:
                    time.sleep(0.2)
        finally:
            server.stop()
    assert len(receiver.seen) >= 2, "Alertmanager sent no webhook"
    correlator = IncidentCorrelator(graph=GRAPH)
    for seen in receiver.seen:
        batch = parse_webhook(json.loads(seen.body))
        assert batch.receiver == "opsmind-test" and not batch.warnings
        for a in batch.alerts:
            correlator.add(a)
    assert len(correlator.incidents) == 1
    inc = correlator.incidents[0]
    assert inc.services == {"checkout", "payment"} and len(inc.alerts) == 2
    assert inc.priority in ("P1", "P2")


def test_fingerprint_known_value_and_order_independence() -> None:
    assert fingerprint({"alertname": "HighLatency", "service": "checkout"}) == "6d0181b725a54201"
    assert fingerprint({"b": "1", "a": "2"}) == fingerprint({"a": "2", "b": "1"})
    assert fingerprint({"a": "bc"}) != fingerprint({"ab": "c"})  # the separator keeps names and values apart


def test_duplicates_are_one_alert_and_resolution_resolves() -> None:
    c = IncidentCorrelator(graph=GRAPH)
    first = c.add(alert("HighLatency", "checkout", T0))
    again = c.add(alert("HighLatency", "checkout", T0), at=T0 + 60)
    assert again is first and len(first.alerts) == 1
    tracked = next(iter(first.alerts.values()))
    assert tracked.repeats == 1 and tracked.last_seen == T0 + 60
    c.add(Alert(labels={"alertname": "HighLatency", "service": "checkout"}, starts_at=T0, ends_at=T0 + 300,
                status="resolved"), at=T0 + 300)
    assert first.status == "resolved" and first.resolved_at == T0 + 300


def test_an_alert_firing_again_after_it_resolved_is_grouped_afresh() -> None:
    c = IncidentCorrelator(CorrelatorSettings(window_s=60), graph=GRAPH)
    first = c.add(alert("HighLatency", "checkout", T0))
    c.add(alert("ErrorRate", "frontend", T0 + 30))  # keeps the incident open
    c.add(Alert(labels={"alertname": "HighLatency", "service": "checkout"}, starts_at=T0, ends_at=T0 + 300,
                status="resolved"), at=T0 + 300)
    assert first.status == "open"
    soon = c.add(alert("HighLatency", "checkout", T0 + 330), at=T0 + 330)  # within the window: the same episode
    assert soon is first and len(first.alerts) == 2
    c.add(Alert(labels={"alertname": "HighLatency", "service": "checkout"}, starts_at=T0 + 330, ends_at=T0 + 400,
                status="resolved"), at=T0 + 400)
    later = c.add(alert("HighLatency", "checkout", T0 + 900), at=T0 + 900)  # 500 s after it resolved
    assert later is not first and first.status == "open" and later.started_at == T0 + 900
    assert c.add(alert("HighLatency", "checkout", T0 + 900), at=T0 + 960) is later  # its repeats follow it


def test_grouping_by_time_labels_and_call_graph() -> None:
    c = IncidentCorrelator(CorrelatorSettings(window_s=600), graph=GRAPH)
    a = c.add(alert("HighLatency", "checkout", T0, cluster="eu"))
    b = c.add(alert("ErrorRate", "payment", T0 + 60, cluster="eu"))  # one call away
    assert a is b and a.services == {"checkout", "payment"}
    assert any("1 call(s) from checkout" in e for e in a.evidence)
    other_cluster = c.add(alert("ErrorRate", "shipping", T0 + 90, cluster="us"))
    assert other_cluster is not a
    unrelated = c.add(alert("HighLatency", "ads", T0 + 120, cluster="eu"))
    assert unrelated is not a
    late = c.add(alert("HighLatency", "checkout", T0 + 5000, cluster="eu", pod="x"))
    assert late is not a and a.status == "closed"  # beyond the window (and closed after an hour): a new incident
    assert len({id(i) for i in (a, other_cluster, unrelated, late)}) == 4


def test_an_alert_linking_two_incidents_merges_them() -> None:
    c = IncidentCorrelator(CorrelatorSettings(max_hops=1), graph=GRAPH)
    pay = c.add(alert("ErrorRate", "payment", T0))
    cat = c.add(alert("HighLatency", "catalog", T0 + 10))
    assert pay is not cat  # payment and catalog are three calls apart
    bridge = c.add(alert("HighLatency", "frontend", T0 + 20))  # one call from catalog, two from payment
    assert bridge is cat
    link = c.add(alert("Saturation", "checkout", T0 + 30))  # one call from payment and from frontend: merges
    assert [i for i in c.incidents if i.status == "open"] == [link]
    assert link.services == {"payment", "catalog", "frontend", "checkout"} and len(link.alerts) == 4
    assert any(e.startswith("merged") for e in link.evidence)


def test_an_incident_alert_keeps_its_labels_when_its_root_cause_is_found_and_services_join() -> None:
    # its labels are its identity: a change would announce the same incident again as a new alert
    from opsmind.engine.alerts import incident_alert

    c = IncidentCorrelator(CorrelatorSettings(window_s=600), graph=GRAPH)
    inc = c.add(alert("HighLatency", "payment", T0, severity="warning"))
    first = incident_alert(inc, tenant="t", base_url="")
    c.attach_rca(inc, "shipping", {"ranking": []})
    assert c.add(alert("HighLatency", "checkout", T0 + 60, severity="warning"), at=T0 + 60) is inc
    later = incident_alert(inc, tenant="t", base_url="")
    assert inc.services == {"checkout", "payment"} and inc.priority == "P3"
    assert later.labels == first.labels and later.fingerprint == first.fingerprint
    assert first.labels["service"] == "payment" and later.annotations["root_cause"] == "shipping"
    assert "root cause shipping" in later.annotations["description"]
    # the opening alert resolves and, while another alert keeps the incident active, fires again: it keeps its place
    c.add(Alert(labels={"alertname": "HighLatency", "service": "payment", "severity": "warning"}, starts_at=T0,
                ends_at=T0 + 120, status="resolved"), at=T0 + 120)
    c.add(alert("ErrorRate", "checkout", T0 + 600), at=T0 + 600)
    again = c.add(alert("HighLatency", "payment", T0 + 800, severity="warning"), at=T0 + 800)  # a new episode
    assert again is inc and incident_alert(inc, tenant="t", base_url="").labels == first.labels


def test_priority_reflects_severity_blast_radius_and_slo() -> None:
    c = IncidentCorrelator(graph=GRAPH)
    big = c.add(alert("SLOBurnRateHigh", "payment", T0, severity="critical"))
    small = c.add(alert("DiskFilling", "ads-db", T0 + 1, severity="info"))
    # payment's failure reaches checkout and frontend: 3 of 7 services; an SLO alert
    assert big.blast_radius == pytest.approx(3 / 7) and big.slo_impact == 1.0 and big.priority == "P1"
    assert small.priority == "P4" and small.score < big.score
    assert c.open()[0] is big


def test_recurrence_links_a_later_incident_with_the_same_signature() -> None:
    c = IncidentCorrelator(CorrelatorSettings(close_after_s=1800), graph=GRAPH)
    first = c.add(alert("HighLatency", "checkout", T0))
    c.add(alert("ErrorRate", "payment", T0 + 30))
    c.attach_rca(first, "payment")
    second = c.add(alert("HighLatency", "checkout", T0 + 86400))
    assert first.status == "closed" and second is not first
    assert second.recurrence_of is None  # half the signature so far (1 of 2 pairs)
    c.add(alert("ErrorRate", "payment", T0 + 86430))
    c.attach_rca(second, "payment")
    assert second.recurrence_of == first.id
    third = c.add(alert("HighLatency", "checkout", T0 + 2 * 86400))
    c.add(alert("ErrorRate", "payment", T0 + 2 * 86400 + 5))
    c.attach_rca(third, "shipping")  # same alerts, different root cause: not the same problem
    assert third.recurrence_of is None


def webhook(**over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "version": "4", "groupKey": "{}:{alertname=\"X\"}", "status": "firing", "receiver": "opsmind",
        "groupLabels": {"alertname": "X"}, "commonLabels": {}, "commonAnnotations": {}, "externalURL": "http://am",
        "alerts": [{"status": "firing", "labels": {"alertname": "X", "service": "a"}, "annotations": {},
                    "startsAt": "2026-01-01T00:00:00.123456789Z", "endsAt": "0001-01-01T00:00:00Z",
                    "generatorURL": "", "fingerprint": fingerprint({"alertname": "X", "service": "a"})}],
    }
    body.update(over)
    return body


def test_webhook_parsing_and_located_errors() -> None:
    batch = parse_webhook(webhook())
    (a,) = batch.alerts
    assert a.starts_at == pytest.approx(1767225600.123457) and a.ends_at is None and not batch.warnings
    wrong_fp = webhook()
    wrong_fp["alerts"][0]["fingerprint"] = "0000000000000000"
    assert "does not match its labels" in parse_webhook(wrong_fp).warnings[0]
    cases: list[tuple[Any, str]] = [
        ([], "expected a JSON object"),
        (webhook(version="3"), "version '3' is not supported"),
        (webhook(alerts=[{"labels": {"alertname": 5}}]), "alerts[0].labels.alertname"),
        (webhook(alerts=[{"annotations": {}}]), "alerts[0].labels: Field required"),
        (webhook(alerts=[{"labels": {"alertname": "X"}, "startsAt": "yesterday"}]), "alerts[0]: cannot read"),
        (webhook(alerts=[{"labels": {"0bad": "X"}, "startsAt": "2026-01-01T00:00:00Z"}]), "not a valid Prometheus"),
        (webhook(alerts=[{"labels": {}, "startsAt": "2026-01-01T00:00:00Z"}]), "without labels"),
    ]
    for payload, message in cases:
        with pytest.raises(DataError) as err:
            parse_webhook(payload)
        assert message in str(err.value), (message, str(err.value))


def test_alertmanager_client_errors_are_one_line() -> None:
    from opsmind.core import SourceError

    with ScriptedServer([Reply(400, '"bad matcher"')]) as srv, \
            Alertmanager(AlertmanagerSettings(url=srv.url, retries=0)) as am, \
            pytest.raises(SourceError, match=r"HTTP 400: bad matcher"):
        am.alerts(filters=["nope"])
    with ScriptedServer([Reply(503, "down"), Reply(200, "[]")]) as srv, \
            Alertmanager(AlertmanagerSettings(url=srv.url, retries=2, backoff_s=0)) as am:
        assert am.alerts() == ([], [])
    assert httpx  # the client is httpx underneath


_RANK = {"P4": 0, "P3": 1, "P2": 2, "P1": 3}
_EVENT = st.tuples(st.sampled_from(["HighLatency", "Errors", "SLOBurnRateHigh", "PodRestarts"]),
                   st.sampled_from(["frontend", "checkout", "catalog", "payment", "shipping", "ads", "ads-db",
                                    "billing"]),  # billing is not in the call graph
                   st.sampled_from(["info", "warning", "critical", "page"]),
                   st.booleans(),  # resolved
                   st.integers(min_value=0, max_value=900))  # seconds since the previous event


@given(st.lists(_EVENT, min_size=1, max_size=40))
@settings(max_examples=200, deadline=None)
def test_an_incidents_priority_never_falls(events: list[tuple[str, str, str, bool, int]]) -> None:
    """docs/notifications.md promises that an incident's priority only rises (a changed severity label is an
    escalation): joining, repeating, resolving, merging and re-opening alerts never lower it."""
    c = IncidentCorrelator(CorrelatorSettings(window_s=600), graph=GRAPH)
    seen: dict[str, int] = {}
    t = T0
    for name, service, severity, resolved, dt in events:
        t += dt
        a = alert(name, service, t - 60, severity=severity)
        c.add(Alert(labels=a.labels, starts_at=a.starts_at, ends_at=t) if resolved else a, at=t)
        for inc in c.incidents:
            rank = _RANK[inc.priority]
            assert rank >= seen.get(inc.id, 0), (inc.id, inc.priority, inc.evidence)
            seen[inc.id] = rank
