"""The API: every route on a seeded store, and the error model for malformed JSON, wrong types, oversized bodies
and unknown ids. The health score, the event cursor and the findings exporter are tested as functions too."""

from __future__ import annotations

import json
import math
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from opsmind.api import create_app
from opsmind.api.events import EventCursor, parse_last_event_id
from opsmind.api.exporter import FindingsCollector
from opsmind.api.server import BackgroundServer
from opsmind.api.views import health_score
from opsmind.config import Settings, SloConfig
from opsmind.core.alerts import Alert
from opsmind.forecast.base import Forecast
from opsmind.incidents.correlate import Incident, TrackedAlert
from opsmind.store import Store
from opsmind.telemetry import Telemetry

NOW = 1_790_000_000.0
ADMIN = "admin-secret-for-tests"


@dataclass
class Seeded:
    store: Store
    client: TestClient
    rate_id: int
    latency_id: int
    anomaly_id: int
    recommendation_id: int
    incident_key: str
    forecast_id: int
    app: FastAPI


def make_forecast(start: float, n: int = 4, step: float = 60.0) -> Forecast:
    ts = ((start + step * np.arange(1, n + 1)) * 1000).astype("datetime64[ms]").astype("datetime64[ns]")
    mean = np.array([10.0, 11.0, np.nan, 13.0][:n])
    return Forecast(timestamps=ts, mean=mean, intervals={80: (mean - 1, mean + 1), 95: (mean - 2, mean + 2)},
                    method="ensemble", notes=("test",))


def seed(store: Store, tenant: str = "default", now: float = NOW) -> dict[str, Any]:
    store.tenants.ensure(tenant)
    rate = store.series.upsert(tenant, "rate", {"service": "checkout"})
    errors = store.series.upsert(tenant, "errors", {"service": "checkout"})
    latency = store.series.upsert(tenant, "latency_p95", {"service": "checkout"})
    ts = now - 60 * np.arange(10, 0, -1)
    store.samples.insert(tenant, rate.id, ts, np.full(10, 100.0))
    store.samples.insert(tenant, errors.id, ts, np.full(10, 5.0))
    store.samples.insert(tenant, latency.id, ts, np.r_[np.full(9, 0.1), np.inf])
    a_old = store.anomalies.record(tenant, latency.id, now - 600, 0.6, severity="medium", detector="opsmind",
                                   evidence={"value": 0.4, "baseline": 0.1, "window": [now - 900, now - 600],
                                             "method": "range", "threshold": 0.5})
    a_new = store.anomalies.record(tenant, latency.id, now - 120, 0.9, severity="high", detector="opsmind",
                                   score=float("nan"), evidence={"value": 0.5})
    fc = store.forecasts.save(tenant, rate.id, make_forecast(now), issued_at=now)
    rec = store.recommendations.save(tenant, "scale", "checkout", now - 30, summary="scale to 4", service="checkout",
                                     payload={"replicas": 4, "current": 2})
    alert = Alert(labels={"alertname": "HighLatency", "service": "checkout", "severity": "critical"},
                  starts_at=now - 300)
    inc = Incident(id="inc-test00001", started_at=now - 300, last_activity=now - 60,
                   alerts={alert.fingerprint: TrackedAlert(alert, "checkout", now - 300, now - 60)},
                   services={"checkout"}, priority="P2", score=0.6, severity=4, evidence=["opened"])
    store.incidents.save(tenant, inc)
    return {"rate": rate.id, "errors": errors.id, "latency": latency.id, "anomaly_old": a_old.id,
            "anomaly": a_new.id, "forecast": fc.id, "recommendation": rec.id, "incident": inc.id}


@pytest.fixture(scope="module")
def seeded_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """A seeded SQLite file, made once; each test works on a copy (a file, so server threads can share it)."""
    path = tmp_path_factory.mktemp("api") / "seeded.db"
    with Store.open(f"sqlite:///{path}") as store:
        ids = seed(store)
    return path, ids


@pytest.fixture
def seeded(seeded_file: tuple[Path, dict[str, Any]], tmp_path: Path) -> Iterator[Seeded]:
    shutil.copy(seeded_file[0], tmp_path / "api.db")
    store = Store.open(f"sqlite:///{tmp_path / 'api.db'}", upgrade=False)
    ids = seeded_file[1]
    settings = Settings.model_validate({
        "api": {"admin_token": ADMIN, "max_body_bytes": 4096},
        "services": [{"name": "checkout", "metrics": {"rate": "x", "errors": "y", "latency_p95": "z"},
                      "roles": {"load": "rate", "errors": "errors", "latency": "latency_p95"},
                      "slo": {"latency_ms": 200, "availability": 0.99}}],
    })
    app = create_app(settings, store=store, clock=lambda: NOW)
    with TestClient(app, raise_server_exceptions=False, headers={"Authorization": f"Bearer {ADMIN}"}) as client:
        yield Seeded(store, client, ids["rate"], ids["latency"], ids["anomaly"], ids["recommendation"],
                     ids["incident"], ids["forecast"], app)
    store.close()


def assert_error(r: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "field"}
    assert "\n" not in body["error"]["message"] and "Traceback" not in body["error"]["message"]
    if code is not None:
        assert body["error"]["code"] == code
    error: dict[str, Any] = body["error"]
    return error


# ---- the routes ---------------------------------------------------------------------------------------------

def test_health_without_token(seeded: Seeded) -> None:
    r = seeded.client.get("/api/v1/health", headers={"Authorization": ""})
    assert r.status_code == 200
    assert r.json() == {"status": "ok", "version": "0.1.0", "store": "ok", "engine": None, "time": NOW}  # its clock


def test_health_reports_the_engine_and_degrades_when_a_source_is_down() -> None:
    class FakeEngine:  # only status() is read; the real engine is tested in its own suite
        def status(self) -> dict[str, object]:
            return {"cycles": 3, "sources": {"prometheus": False}}

    with Store.open("sqlite://") as store:
        app = create_app(Settings(), store=store, engine=FakeEngine())
        body = TestClient(app).get("/api/v1/health").json()
    assert body["status"] == "degraded" and body["engine"]["cycles"] == 3


def test_services_overview_scores_health_from_anomalies_incidents_and_slo(seeded: Seeded) -> None:
    body = seeded.client.get("/api/v1/services").json()
    (svc,) = body["services"]
    assert svc["service"] == "checkout"
    assert svc["red"] == {"rate": 100.0, "errors": 5.0, "latency": None}  # the latest latency is +Inf: no value
    assert svc["open_incidents"] == 1 and svc["anomalies_1h"] == 2 and svc["max_probability"] == 0.9
    # 100 - 40 * 0.9 (anomaly) - 40 (P2 incident) - 20 (error ratio 0.05 > budget 0.01) = 4
    assert svc["health"] == 4.0 and svc["status"] == "critical"
    assert len(svc["reasons"]) == 3


def test_health_score_function() -> None:
    assert health_score(max_probability=None, incident_priorities=[], latency_s=0.1, error_ratio=0.0,
                        slo=SloConfig(latency_ms=200, availability=0.99))[:2] == (100.0, "ok")
    score, status, reasons = health_score(max_probability=0.25, incident_priorities=["P4", "P1"], latency_s=0.3,
                                          error_ratio=None, slo=SloConfig(latency_ms=200))
    assert (score, status) == (10.0, "critical")  # 100 - 40 * 0.25 - 60 (worst incident P1) - 20 (latency)
    assert "open P1 incident (-60)" in reasons


def test_series_routes(seeded: Seeded) -> None:
    c = seeded.client
    listed = c.get("/api/v1/series", params={"service": "checkout"}).json()["series"]
    assert [s["name"] for s in listed] == ["rate", "errors", "latency_p95"]
    rate = listed[0]
    assert rate["last"] == [NOW - 60, 100.0] and rate["selector"] == 'rate{service="checkout"}'
    assert c.get("/api/v1/series", params={"name": "errors"}).json()["series"][0]["name"] == "errors"
    one = c.get(f"/api/v1/series/{seeded.latency_id}").json()
    assert one["last"] == [NOW - 60, None]  # +Inf is not JSON: null
    samples = c.get(f"/api/v1/series/{seeded.latency_id}/samples", params={"limit": 3}).json()
    assert samples["ts"] == [NOW - 180, NOW - 120, NOW - 60] and samples["values"] == [0.1, 0.1, None]
    window = c.get(f"/api/v1/series/{seeded.rate_id}/samples", params={"start": NOW - 120, "end": NOW}).json()
    assert len(window["ts"]) == 2
    assert c.post("/api/v1/ingest", json={"series": [{
        "name": "http_requests_total", "labels": {"service": "checkout"},
        "samples": [[NOW - 40, 100.0], [NOW - 30, 150.0], [NOW - 20, 20.0], [NOW - 10, 40.0]]}]}).status_code == 200
    (counter,) = c.get("/api/v1/series", params={"name": "http_requests_total"}).json()["series"]
    raw = c.get(f"/api/v1/series/{counter['id']}/samples").json()
    assert raw["values"] == [100.0, 150.0, 20.0, 40.0]
    rates = c.get(f"/api/v1/series/{counter['id']}/samples", params={"rate": "true"}).json()
    assert rates["ts"] == [NOW - 30, NOW - 20, NOW - 10] and rates["values"] == [5.0, 2.0, 2.0]  # reset corrected
    fc = c.get(f"/api/v1/series/{seeded.rate_id}/forecast").json()
    assert fc["mean"] == [10.0, 11.0, None, 13.0] and fc["intervals"]["95"][1][0] == 12.0
    assert_error(c.get(f"/api/v1/series/{seeded.latency_id}/forecast"), 404, "not_found")


def test_anomaly_routes_with_series_and_feedback(seeded: Seeded) -> None:
    c = seeded.client
    listed = c.get("/api/v1/anomalies").json()["anomalies"]
    assert [a["probability"] for a in listed] == [0.9, 0.6]  # newest first
    assert listed[0]["series"] == {"name": "latency_p95", "service": "checkout", "labels": {"service": "checkout"}}
    assert listed[0]["score"] is None and listed[0]["feedback"] is None
    assert c.get("/api/v1/anomalies", params={"min_probability": 0.7}).json()["anomalies"][0]["id"] == \
        seeded.anomaly_id
    assert c.get("/api/v1/anomalies", params={"since": NOW - 300}).json()["anomalies"].__len__() == 1
    assert c.get("/api/v1/anomalies", params={"service": "nope"}).json() == {"anomalies": []}
    r = c.post("/api/v1/feedback", json={"anomaly_id": seeded.anomaly_id, "verdict": "false_positive",
                                         "comment": "deploy"})
    assert r.status_code == 200 and r.json()["verdict"] == "false_positive" and r.json()["author"] == "admin"
    assert c.get(f"/api/v1/anomalies/{seeded.anomaly_id}").json()["feedback"] == "false_positive"
    missed = c.post("/api/v1/feedback", json={"series_id": seeded.rate_id, "ts": NOW - 240, "verdict": "missed"})
    assert missed.status_code == 200 and missed.json()["anomaly_id"] is None
    fb = c.get("/api/v1/feedback", params={"series_id": seeded.rate_id}).json()["feedback"]
    assert [f["verdict"] for f in fb] == ["missed"]
    assert len(c.get("/api/v1/feedback").json()["feedback"]) == 2


def test_forecast_and_recommendation_routes(seeded: Seeded) -> None:
    c = seeded.client
    fcs = c.get("/api/v1/forecasts", params={"series_id": seeded.rate_id}).json()["forecasts"]
    assert [f["id"] for f in fcs] == [seeded.forecast_id]
    recs = c.get("/api/v1/recommendations", params={"kind": "scale"}).json()["recommendations"]
    assert recs[0]["payload"] == {"replicas": 4, "current": 2} and recs[0]["status"] == "open"
    r = c.post(f"/api/v1/recommendations/{seeded.recommendation_id}/status", json={"status": "accepted"})
    assert r.status_code == 200 and r.json()["status"] == "accepted"
    assert c.get("/api/v1/recommendations", params={"status": "open"}).json() == {"recommendations": []}
    audit = seeded.store.audit.list("default")
    assert audit[0].action == "recommendation.status" and audit[0].actor == "admin"
    assert_error(c.post(f"/api/v1/recommendations/{seeded.recommendation_id}/status", json={"status": "done"}),
                 422, "validation_error")


def test_incident_routes_and_idempotent_webhook(seeded: Seeded) -> None:
    c = seeded.client
    listed = c.get("/api/v1/incidents", params={"status": "open"}).json()["incidents"]
    assert [i["key"] for i in listed] == [seeded.incident_key]
    one = c.get(f"/api/v1/incidents/{seeded.incident_key}").json()
    assert one["priority"] == "P2" and one["alerts"][0]["name"] == "HighLatency"
    assert_error(c.get("/api/v1/incidents/inc-nothere"), 404, "not_found")
    payload = {"version": "4", "status": "firing", "receiver": "opsmind", "groupLabels": {}, "alerts": [
        {"status": "firing", "labels": {"alertname": "DiskFull", "service": "db", "severity": "warning"},
         "annotations": {}, "startsAt": "2026-09-21T10:00:00Z", "endsAt": "0001-01-01T00:00:00Z"}]}
    first = c.post("/api/v1/alertmanager/webhook", json=payload)
    assert first.status_code == 200, first.text
    again = c.post("/api/v1/alertmanager/webhook", json=payload)
    assert first.json() == again.json() and len(first.json()["incidents"]) == 1
    assert len(c.get("/api/v1/incidents", params={"service": "db"}).json()["incidents"]) == 1
    bad = dict(payload, alerts=[{"labels": {"alertname": "X"}, "startsAt": "yesterday"}])
    assert "alerts[0]" in str(assert_error(c.post("/api/v1/alertmanager/webhook", json=bad), 400)["message"])
    assert_error(c.post("/api/v1/alertmanager/webhook", json={"version": "3", "alerts": []}), 400, "invalid_data")


def test_ingest_json(seeded: Seeded) -> None:
    c = seeded.client
    body = {"series": [{"name": "rate", "labels": {"service": "cart"}, "samples": [[NOW, 1.0], [NOW + 15, None]]},
                       {"name": "cpu", "labels": {"service": "cart", "pod": "a"}, "samples": [[NOW, 0.5]]}]}
    r = c.post("/api/v1/ingest", json=body)
    assert r.json() == {"series": 2, "samples": 3, "inserted": 3}
    assert c.post("/api/v1/ingest", json=body).json()["inserted"] == 0  # a replay adds nothing
    cart = c.get("/api/v1/series", params={"service": "cart"}).json()["series"]
    assert {s["name"] for s in cart} == {"rate", "cpu"}
    metrics = c.get("/metrics").text
    assert 'opsmind_ingested_samples_total{path="ingest",tenant="default"} 3.0' in metrics


def test_metrics_exports_findings(seeded: Seeded) -> None:
    text = seeded.client.get("/metrics", headers={"Authorization": ""}).text
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for f in text_string_to_metric_families(text) for s in f.samples}
    lat = ("tenant", "default"), ("service", "checkout"), ("series", 'latency_p95{service="checkout"}')
    assert samples[("opsmind_anomaly_probability", tuple(sorted(lat)))] == 0.9
    rate = tuple(sorted([("tenant", "default"), ("service", "checkout"), ("series", 'rate{service="checkout"}')]))
    assert samples[("opsmind_forecast_mean", rate)] == 10.0  # the first step after now
    assert samples[("opsmind_forecast_upper", rate)] == 12.0  # the 95 % bound
    assert samples[("opsmind_recommended_replicas", (("service", "checkout"), ("tenant", "default")))] == 4.0
    assert samples[("opsmind_incidents_open", (("priority", "P2"), ("tenant", "default")))] == 1.0
    assert samples[("opsmind_incidents_open", (("priority", "P1"), ("tenant", "default")))] == 0.0
    assert samples[("opsmind_findings_up", ())] == 1.0


def test_findings_collector_skips_old_anomalies_and_past_forecasts() -> None:
    with Store.open("sqlite://") as store:
        seed(store)
        registry = CollectorRegistry()
        registry.register(FindingsCollector(store, clock=lambda: NOW + 3600))  # an hour later
        names = {s.name for m in registry.collect() for s in m.samples}
    assert "opsmind_anomaly_probability" not in names and "opsmind_forecast_mean" not in names
    assert "opsmind_recommended_replicas" in names


def test_dashboard_is_mounted(seeded: Seeded) -> None:
    r = seeded.client.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")


def test_openapi_has_response_models_for_every_route(seeded: Seeded) -> None:
    spec = seeded.client.get("/openapi.json").json()
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            ok = [s for s in op["responses"] if s.startswith("2")]
            assert ok, f"{method} {path} documents no success response"
            content = op["responses"][ok[0]].get("content")
            if ok[0] != "204":
                assert content, f"{method} {path} has no response schema"
    assert seeded.client.get("/docs").status_code == 200


# ---- errors -------------------------------------------------------------------------------------------------

def test_malformed_json_is_400(seeded: Seeded) -> None:
    err = assert_error(seeded.client.post("/api/v1/ingest", content=b'{"series": [',
                                          headers={"content-type": "application/json"}), 400, "invalid_json")
    assert err["field"] == "body"


@pytest.mark.parametrize("body, field", [
    ({"series": [{"name": 5, "samples": []}]}, "body.series[0].name"),
    ({"series": [{"name": "x", "samples": [["now", 1.0]]}]}, "body.series[0].samples[0][0]"),
    ({"series": [{"name": "x", "samples": [[1.0, "high"]]}]}, "body.series[0].samples[0][1]"),
    ({"series": [{"name": "x", "samples": [[1e300, 1.0]]}]}, "body.series[0].samples[0]"),
    ({"series": [{"name": "x", "samples": [[None, 1.0]]}]}, "body.series[0].samples[0]"),
    ({"series": [{"name": "x", "samples": [[1.0, 2.0, 3.0]]}]}, "body.series[0].samples[0]"),
    ({"series": [{"name": "x", "samples": [[1.0, True]]}]}, "body.series[0].samples[0][1]"),
    ({"series": "all"}, "body.series"),
    ({"series": [], "extra": 1}, "body.extra"),
    ([1, 2], "body"),
])
def test_wrong_types_are_422_naming_the_field(seeded: Seeded, body: object, field: str) -> None:
    err = assert_error(seeded.client.post("/api/v1/ingest", json=body), 422, "validation_error")
    assert err["field"] == field, err


def test_bad_values_the_store_refuses_are_400(seeded: Seeded) -> None:
    err = assert_error(seeded.client.post("/api/v1/ingest", json={"series": [
        {"name": "x", "labels": {"bad-label": "v"}, "samples": [[1.0, 1.0]]}]}), 400, "invalid_data")
    assert "bad-label" in str(err["message"])
    assert_error(seeded.client.get("/api/v1/recommendations", params={"kind": "Not A Slug"}), 400, "invalid_data")


@pytest.mark.parametrize("path, params", [
    ("/api/v1/series", {"limit": 0}), ("/api/v1/series", {"limit": "many"}), ("/api/v1/anomalies",
                                                                              {"min_probability": 2}),
    ("/api/v1/anomalies", {"since": "nan"}), ("/api/v1/series/abc", {}), ("/api/v1/series/0", {}),
    ("/api/v1/series/99999999999999999999999", {}), ("/api/v1/incidents", {"status": "burning"}),
])
def test_bad_query_and_path_values_are_422(seeded: Seeded, path: str, params: dict[str, object]) -> None:
    assert_error(seeded.client.get(path, params=params), 422, "validation_error")


def test_oversized_payload_is_413_with_and_without_content_length(seeded: Seeded) -> None:
    big = json.dumps({"series": [{"name": "x", "samples": [[1.0, 1.0]] * 1000}]}).encode()
    assert len(big) > 4096
    assert_error(seeded.client.post("/api/v1/ingest", content=big, headers={"content-type": "application/json"}),
                 413, "payload_too_large")

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit applies while reading
        for i in range(0, len(big), 1000):
            yield big[i:i + 1000]

    assert_error(seeded.client.post("/api/v1/ingest", content=chunks(), headers={"content-type": "application/json"}),
                 413, "payload_too_large")


@pytest.mark.parametrize("path", [
    "/api/v1/series/424242", "/api/v1/series/424242/samples", "/api/v1/series/424242/forecast",
    "/api/v1/anomalies/424242", "/api/v1/incidents/inc-424242",
])
def test_unknown_ids_are_404(seeded: Seeded, path: str) -> None:
    assert "424242" in str(assert_error(seeded.client.get(path), 404, "not_found")["message"])


def test_unknown_ids_in_writes_are_404(seeded: Seeded) -> None:
    c = seeded.client
    assert_error(c.post("/api/v1/feedback", json={"anomaly_id": 424242, "verdict": "true_positive"}), 404)
    assert_error(c.post("/api/v1/feedback", json={"series_id": 424242, "ts": NOW, "verdict": "missed"}), 404)
    assert_error(c.post("/api/v1/recommendations/424242/status", json={"status": "dismissed"}), 404)


def test_feedback_shape_errors(seeded: Seeded) -> None:
    c = seeded.client
    assert_error(c.post("/api/v1/feedback", json={"anomaly_id": seeded.anomaly_id, "verdict": "missed"}), 422)
    assert_error(c.post("/api/v1/feedback", json={"anomaly_id": "1", "verdict": "true_positive"}), 422)
    assert_error(c.post("/api/v1/feedback", json={"verdict": "maybe"}), 422)


def test_unknown_route_and_method(seeded: Seeded) -> None:
    assert "no route GET /api/v1/nothing" in str(assert_error(seeded.client.get("/api/v1/nothing"), 404)["message"])
    assert_error(seeded.client.delete("/api/v1/series"), 405, "method_not_allowed")


def test_a_bug_is_a_500_without_traceback() -> None:
    with Store.open("sqlite://") as store:
        app = create_app(Settings(), store=store)

        @app.get("/boom")
        def boom() -> None:
            raise RuntimeError("secret internals /etc/passwd")

        err = assert_error(TestClient(app, raise_server_exceptions=False).get("/boom"), 500, "internal_error")
    assert "secret" not in str(err["message"])


def test_store_down_is_503() -> None:
    store = Store.open("sqlite://")
    app = create_app(Settings.model_validate({"api": {"anonymous_scopes": ["read"]}}), store=store)
    client = TestClient(app, raise_server_exceptions=False)
    store.db.engine.dispose()

    def broken(*_: object, **__: object) -> None:
        from opsmind.store import StoreError
        raise StoreError("database sqlite://: unable to open database file")

    store.series.list = broken  # type: ignore[method-assign, assignment]  # a database that went away
    assert_error(client.get("/api/v1/series"), 503, "store_unavailable")
    store.close()


# ---- events -------------------------------------------------------------------------------------------------

def test_event_cursor_sends_new_and_changed_records_once() -> None:
    with Store.open("sqlite://") as store:
        ids = seed(store)
        cursor = EventCursor()
        cursor.prime(store, "default", None)
        assert cursor.poll(store, "default") == []
        sid = ids["latency"]
        a = store.anomalies.record("default", sid, NOW - 30, 0.95, severity="high")
        store.recommendations.set_status("default", ids["recommendation"], "dismissed")
        events = cursor.poll(store, "default")
        assert [e.split("\n")[0] for e in events] == ["event: anomaly", "event: recommendation"]
        assert events[0].split("\n")[1] == f"id: anomaly:{a.id}"
        data = json.loads(events[0].split("\n")[2].removeprefix("data: "))
        assert data["probability"] == 0.95 and data["series"]["name"] == "latency_p95"
        assert cursor.poll(store, "default") == []

        again = EventCursor()  # a reconnect that saw the first anomaly only
        again.prime(store, "default", parse_last_event_id(f"anomaly:{ids['anomaly_old']}"))
        replay = again.poll(store, "default")
        assert [e.split("\n")[1] for e in replay] == [f"id: anomaly:{ids['anomaly']}", f"id: anomaly:{a.id}"]
    assert parse_last_event_id("garbage") is None and parse_last_event_id("incident:x") is None


def test_events_stream_over_http(seeded: Seeded) -> None:
    seeded.app.state.opsmind.event_poll_s = 0.05
    store = seeded.store
    with seeded.client.stream("GET", "/api/v1/events") as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        lines = r.iter_lines()
        assert next(lines) == "retry: 3000"
        store.anomalies.record("default", seeded.rate_id, NOW - 5, 0.99, severity="critical")
        got = []
        deadline = time.monotonic() + 30
        for line in lines:
            got.append(line)
            if line.startswith("data:") or time.monotonic() > deadline:
                break
    assert "event: anomaly" in got and any(g.startswith("id: anomaly:") for g in got)
    assert math.isclose(json.loads(got[-1].removeprefix("data: "))["probability"], 0.99)


def test_telemetry_counts_requests_by_route() -> None:
    with Store.open("sqlite://") as store:
        telemetry = Telemetry()
        app = create_app(Settings.model_validate({"api": {"anonymous_scopes": ["read"]}}), store=store,
                         telemetry=telemetry)
        client = TestClient(app)
        client.get("/api/v1/series")
        client.get("/api/v1/series/77")
        text = telemetry.render().decode()
    assert 'opsmind_api_requests_total{route="/api/v1/series",status="2xx"} 1.0' in text
    assert 'opsmind_api_requests_total{route="/api/v1/series/{series_id}",status="4xx"} 1.0' in text


def test_event_stream_pings_and_ends_when_the_client_disconnects(tmp_path: Path) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'sse.db'}")
    seed(store)
    app = create_app(Settings.model_validate({"api": {"anonymous_scopes": ["read"]}}), store=store)
    state = app.state.opsmind
    state.event_poll_s, state.event_ping_s = 0.05, 0.2
    try:
        with BackgroundServer(app) as server:
            with httpx.Client(timeout=30) as client, client.stream("GET", f"{server.url}/api/v1/events") as r:
                lines = r.iter_lines()
                assert next(lines) == "retry: 3000"
                assert next(lines) == ": connected"
                seen = [next(lines) for _ in range(3)]
                assert ": ping" in seen
                assert state.streams.open == 1
            deadline = time.monotonic() + 20
            while state.streams.open and time.monotonic() < deadline:
                time.sleep(0.05)
            assert state.streams.open == 0  # the server noticed the disconnect and ended the stream
    finally:
        store.close()
