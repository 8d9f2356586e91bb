"""A real Prometheus scrapes opsmind's /metrics: the findings (anomaly probability, forecast mean and upper bound,
recommended replicas, open incidents) and opsmind's own health become queryable series."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from opsmind.api import create_app
from opsmind.api.server import BackgroundServer
from opsmind.config import Settings
from opsmind.core.alerts import Alert
from opsmind.forecast.base import Forecast
from opsmind.incidents.correlate import Incident, TrackedAlert
from opsmind.store import Store
from servers import PrometheusProcess


def seed_findings(store: Store, now: float) -> None:
    store.tenants.ensure("default")
    rate = store.series.upsert("default", "rate", {"service": "checkout"})
    latency = store.series.upsert("default", "latency_p95", {"service": "checkout"})
    store.anomalies.record("default", latency.id, now - 60, 0.8, severity="high")
    store.anomalies.record("default", latency.id, now - 30, 0.97, severity="critical")  # the latest one counts
    stamps = ((now + 60 * np.arange(1, 4)) * 1000).astype("datetime64[ms]").astype("datetime64[ns]")
    mean = np.array([120.0, 130.0, 140.0])
    store.forecasts.save("default", rate.id, Forecast(stamps, mean, {80: (mean - 5, mean + 5),
                                                                      95: (mean - 10, mean + 25)}, "ensemble"),
                         issued_at=now)
    store.recommendations.save("default", "scale", "checkout", now - 10, service="checkout",
                               payload={"replicas": 6, "current": 3})
    alert = Alert(labels={"alertname": "HighLatency", "service": "checkout", "severity": "critical"},
                  starts_at=now - 120)
    store.incidents.save("default", Incident(
        id="inc-export0001", started_at=now - 120, last_activity=now - 30, services={"checkout"}, priority="P1",
        alerts={alert.fingerprint: TrackedAlert(alert, "checkout", now - 120, now - 30)}))


def query(prom: str, promql: str) -> list[dict[str, Any]]:
    body = httpx.get(f"{prom}/api/v1/query", params={"query": promql}, timeout=5).json()
    assert body["status"] == "success", body
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


@pytest.mark.integration
def test_prometheus_scrapes_the_findings(prometheus_bin: str, tmp_path: Path) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'export.db'}")
    seed_findings(store, time.time())
    app = create_app(Settings(), store=store)  # /metrics needs no token
    try:
        with BackgroundServer(app) as api:
            prom = PrometheusProcess(prometheus_bin, tmp_path, scrape_targets=[f"127.0.0.1:{api.port}"])
            try:
                prom.start()
                prom.wait_for_samples("opsmind_anomaly_probability", 1)
                prom.wait_for_samples('opsmind_api_requests_total{route="/metrics"}', 1)  # counted after a scrape
                prob = query(prom.url, "opsmind_anomaly_probability")
                mean = query(prom.url, 'opsmind_forecast_mean{service="checkout"}')
                upper = query(prom.url, "opsmind_forecast_upper")
                replicas = query(prom.url, "opsmind_recommended_replicas")
                incidents = query(prom.url, "sum by (priority) (opsmind_incidents_open)")
                up = query(prom.url, "opsmind_findings_up")
            finally:
                prom.stop()
    finally:
        store.close()
    (p,) = prob
    assert p["metric"]["series"] == 'latency_p95{service="checkout"}'
    assert p["metric"]["tenant"] == "default" and float(p["value"][1]) == 0.97
    assert [float(m["value"][1]) for m in mean] == [120.0]
    assert [float(m["value"][1]) for m in upper] == [145.0]  # the 95 % bound at the next step
    assert [(m["metric"]["service"], float(m["value"][1])) for m in replicas] == [("checkout", 6.0)]
    by_priority = {m["metric"]["priority"]: float(m["value"][1]) for m in incidents}
    assert by_priority == {"P1": 1.0, "P2": 0.0, "P3": 0.0, "P4": 0.0}
    assert float(up[0]["value"][1]) == 1.0
