"""The Grafana dashboard in deploy/grafana: valid JSON of a recent schema, every query parsed by a real Prometheus,
and every metric it reads one that opsmind exports (its telemetry and the findings of /metrics)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import httpx
import pytest

from opsmind.api.exporter import FindingsCollector
from opsmind.store import Store
from opsmind.telemetry import Telemetry
from servers import RunningPrometheus

DASHBOARD = Path(__file__).parent.parent / "deploy" / "grafana" / "opsmind-dashboard.json"
CONTRACT_FINDINGS = {"opsmind_anomaly_probability", "opsmind_forecast_mean", "opsmind_forecast_upper",
                     "opsmind_recommended_replicas", "opsmind_incidents_open"}
GRAFANA_MACROS = {"$__rate_interval": "1m", "$__interval": "1m", "$__range": "1h"}
_SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_sum", "_count", "_created"),
             "summary": ("_sum", "_count", "_created"), "gauge": ("",), "unknown": ("",)}
_METRIC = re.compile(r"\b(opsmind_[A-Za-z0-9_:]*)")


def _names(families: Iterable[Any]) -> set[str]:
    out = set()
    for family in families:
        out |= {family.name + suffix for suffix in _SUFFIXES.get(family.type, ("",))}
    return out


def exported_names() -> set[str]:
    """Every sample name opsmind's /metrics can carry: the telemetry registry and the findings collector."""
    names = _names(Telemetry().registry.collect())
    with Store.open("sqlite://") as store:
        names |= _names(FindingsCollector(store).collect())
    return names


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    data = json.loads(DASHBOARD.read_text())
    assert isinstance(data, dict)
    return data


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for p in dashboard["panels"]:
        out.append(p)
        out += p.get("panels", [])  # collapsed rows keep their panels inside
    return out


def variables(dashboard: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in dashboard["templating"]["list"]}


def expand(expr: str, dashboard: dict[str, Any]) -> str:
    """An expression as Prometheus would get it: text variables by their default, the others matching anything."""
    for macro, value in GRAFANA_MACROS.items():
        expr = expr.replace(macro, value)
    for name, var in variables(dashboard).items():
        if var["type"] == "textbox":
            value = str(var["current"]["value"]).replace("\\", "\\\\")
            expr = re.sub(rf"\$\{{{name}\}}|\${name}\b", value, expr)
    for name in variables(dashboard):
        expr = re.sub(rf"\$\{{{name}(:\w+)?\}}|\${name}\b", ".*", expr)
    return expr


def queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(where, expression) of every panel target and every query variable."""
    out = [(f"panel {p['title']!r} target {t['refId']}", t["expr"]) for p in panels(dashboard)
           for t in p.get("targets", [])]
    for var in dashboard["templating"]["list"]:
        if var["type"] == "query":
            query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
            match = re.fullmatch(r"label_values\((.*),\s*(\w+)\)", query)
            assert match, f"variable {var['name']}: {query!r} is not label_values(selector, label)"
            out.append((f"variable {var['name']}", match.group(1)))
    return out


def test_the_dashboard_is_importable_grafana_json(dashboard: dict[str, Any]) -> None:
    assert dashboard["schemaVersion"] >= 36
    assert dashboard["uid"] and dashboard["title"]
    (ds,) = dashboard["__inputs"]
    assert (ds["name"], ds["type"], ds["pluginId"]) == ("DS_PROMETHEUS", "datasource", "prometheus")
    ids = [p["id"] for p in panels(dashboard)]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    assert {"tenant", "service"} <= set(variables(dashboard))
    for p in panels(dashboard):
        grid = p["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24 and grid["h"] > 0, p["title"]
        if p["type"] == "row":
            continue
        assert p["datasource"] == {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}, p["title"]
        assert p["targets"], f"panel {p['title']!r} has no query"
        for t in p["targets"]:
            assert t["datasource"]["uid"] == "${DS_PROMETHEUS}"
            used = set(re.findall(r"\$\{?(\w+)", t["expr"])) - {m.lstrip("$") for m in GRAFANA_MACROS}
            assert used <= set(variables(dashboard)), f"{p['title']}: undefined variables {used}"


def test_it_shows_what_opsmind_exports(dashboard: dict[str, Any]) -> None:
    exprs = " ".join(e for _, e in queries(dashboard))
    used = set(_METRIC.findall(exprs))
    for name in ("opsmind_anomaly_probability", "opsmind_forecast_mean", "opsmind_forecast_upper",
                 "opsmind_recommended_replicas", "opsmind_incidents_open", "opsmind_ingested_samples_total",
                 "opsmind_engine_cycle_seconds_bucket", "opsmind_source_up", "opsmind_series_stale"):
        assert name in used, f"the dashboard does not show {name}"
    filtered = [e for _, e in queries(dashboard) if "opsmind_anomaly_probability" in e and "by (" in e]
    assert any('service=~"$service"' in e and 'tenant=~"$tenant"' in e for e in filtered)


def test_every_metric_it_reads_is_exported(dashboard: dict[str, Any]) -> None:
    names = exported_names()
    assert names >= CONTRACT_FINDINGS  # the exporter still serves the names of the contract
    for where, expr in queries(dashboard):
        for metric in _METRIC.findall(expr):
            assert metric in names, f"{where}: {metric} is not exported by opsmind"


def test_every_query_parses_in_a_real_prometheus(dashboard: dict[str, Any], prometheus: RunningPrometheus) -> None:
    with httpx.Client(base_url=prometheus.url, timeout=10) as client:
        for where, expr in queries(dashboard):
            query = expand(expr, dashboard)
            answer = client.get("/api/v1/query", params={"query": query})
            body = answer.json()
            assert answer.status_code == 200 and body["status"] == "success", f"{where}: {query!r}: {body}"
        # and the check itself can fail: Prometheus refuses a broken expression
        broken = client.get("/api/v1/query", params={"query": "sum by (le (rate(x[1m]))"}).json()
        assert broken["status"] == "error"
