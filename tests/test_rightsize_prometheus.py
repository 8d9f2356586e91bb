"""``opsmind rightsize --prometheus`` against a real Prometheus scraping an exporter of cAdvisor-style and
kube-state-metrics series, with 30 hours of history backfilled by promtool."""

from __future__ import annotations

import json
import math
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import yaml
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from typer.testing import CliRunner

from opsmind.cli.main import app
from opsmind.sources.kube_metrics import fetch_containers, workload_of
from opsmind.sources.prometheus import Prometheus, PrometheusSettings
from servers import PrometheusProcess, free_port

MIB = 1024.0**2
GIB = 1024.0**3
HISTORY_S = 30 * 3600
STEP_S = 60


@dataclass(frozen=True)
class Series:
    """One series: metric name, labels, and its value as a function of Unix time (counters are cumulative)."""

    metric: str
    labels: dict[str, str]
    value: Callable[[float], float]
    counter: bool = False


def _constant_cpu(cores: float, t0: float) -> Callable[[float], float]:
    """CPU seconds used since ``t0`` at a constant rate."""
    return lambda t: cores * max(0.0, t - t0)


def _daily_cpu(t0: float) -> Callable[[float], float]:
    """CPU seconds since ``t0`` at 0.3 + 0.2 * sin(2 pi t / 1 day) cores (the integral, in closed form)."""
    w = 2 * math.pi / 86400.0
    return lambda t: 0.3 * (t - t0) - 0.2 / w * (math.cos(w * t) - math.cos(w * t0))


def _const(value: float) -> Callable[[float], float]:
    return lambda t: value


def _steps(t0: float, every_s: float) -> Callable[[float], float]:
    return lambda t: float(max(0, math.floor((t - t0) / every_s)))


def cluster(start: float, oom_at: float) -> list[Series]:
    """Namespace ``shop``: Deployment web (2 pods), StatefulSet db (one OOM kill), DaemonSet agent (idle),
    Deployment worker (crash-looping); namespace ``ops``: Deployment tool (filtered out by --namespace shop)."""
    out: list[Series] = []

    def container(ns: str, pod: str, name: str, cpu_seconds: Callable[[float], float], mem: float,
                  req: tuple[float, float], lim: tuple[float | None, float | None],
                  restarts: Callable[[float], float] | None = None) -> None:
        lab = {"namespace": ns, "pod": pod, "container": name}
        out.append(Series("container_cpu_usage_seconds_total", lab, cpu_seconds, counter=True))
        out.append(Series("container_memory_working_set_bytes", lab, lambda t: mem))
        for res, value in zip(("cpu", "memory"), req, strict=True):
            out.append(Series("kube_pod_container_resource_requests", {**lab, "resource": res}, _const(value)))
        for res, lv in zip(("cpu", "memory"), lim, strict=True):
            if lv is not None:
                out.append(Series("kube_pod_container_resource_limits", {**lab, "resource": res}, _const(lv)))
        out.append(Series("kube_pod_container_status_restarts_total", lab, restarts or (lambda t: 0.0), counter=True))
        out.append(Series("container_cpu_cfs_periods_total", lab, lambda t: (t - start) * 10.0, counter=True))
        out.append(Series("container_cpu_cfs_throttled_periods_total", lab, lambda t: (t - start) * 0.1,
                          counter=True))

    for pod in ("web-5d8f7c9b4d-x2x9z", "web-5d8f7c9b4d-q7w5k"):
        container("shop", pod, "app", _daily_cpu(start), 300 * MIB, (1.0, 512 * MIB), (1.0, 512 * MIB))
        out.append(Series("kube_pod_owner", {"namespace": "shop", "pod": pod, "owner_kind": "ReplicaSet",
                                             "owner_name": "web-5d8f7c9b4d"}, lambda t: 1.0))
    out.append(Series("kube_replicaset_owner", {"namespace": "shop", "replicaset": "web-5d8f7c9b4d",
                                                "owner_kind": "Deployment", "owner_name": "web"}, lambda t: 1.0))
    container("shop", "db-0", "postgres", _constant_cpu(0.5, start), 2 * GIB, (1.0, 2 * GIB), (None, 2.2 * GIB),
              restarts=lambda t: 1.0 if t >= oom_at else 0.0)
    out.append(Series("kube_pod_container_status_last_terminated_reason",
                      {"namespace": "shop", "pod": "db-0", "container": "postgres", "reason": "OOMKilled"},
                      lambda t: 1.0 if t >= oom_at else 0.0))
    out.append(Series("kube_pod_owner", {"namespace": "shop", "pod": "db-0", "owner_kind": "StatefulSet",
                                         "owner_name": "db"}, lambda t: 1.0))
    container("shop", "agent-4kq8p", "agent", _constant_cpu(0.0, start), 50 * MIB, (0.1, 64 * MIB), (None, None))
    container("shop", "worker-6b7f9c8d5b-m8n2p", "job", _constant_cpu(0.3, start), 200 * MIB, (0.5, 256 * MIB),
              (None, None), restarts=_steps(start, 1800.0))
    container("ops", "tool-7c6b5d4f9b-zz2kk", "tool", _constant_cpu(0.1, start), 100 * MIB, (0.2, 128 * MIB),
              (None, None))
    return out


def _fmt_labels(labels: dict[str, str]) -> str:
    return ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))


def backfill(promtool: str, storage: Path, series: list[Series], start: float, end: float) -> None:
    """Write every series every ``STEP_S`` from ``start`` to ``end`` into TSDB blocks (promtool)."""
    times = np.arange(start, end + 1, STEP_S)
    lines: list[str] = []
    by_metric: dict[str, list[Series]] = {}
    for s in series:
        by_metric.setdefault(s.metric, []).append(s)
    for metric, members in by_metric.items():
        lines.append(f"# TYPE {metric} gauge")
        for s in members:
            vals = [s.value(float(t)) for t in times]
            lab = _fmt_labels(s.labels)
            lines += [f"{metric}{{{lab}}} {v!r} {int(t)}" for t, v in zip(times, vals, strict=True)]
    lines.append("# EOF")
    source = storage.parent / "rightsize.om"
    source.write_text("\n".join(lines) + "\n")
    subprocess.run([promtool, "tsdb", "create-blocks-from", "openmetrics", "--quiet", str(source), str(storage)],
                   check=True, capture_output=True, timeout=300)


class ClusterCollector:
    """Serves every series at scrape time (counters continue from the backfill)."""

    def __init__(self, series: list[Series]) -> None:
        self.series = series

    def collect(self) -> Iterator[Metric]:
        now = time.time()
        fams: dict[str, Metric] = {}
        for s in self.series:
            keys = sorted(s.labels)
            if s.metric not in fams:
                if s.counter:
                    fams[s.metric] = CounterMetricFamily(s.metric.removesuffix("_total"), s.metric, labels=keys)
                else:
                    fams[s.metric] = GaugeMetricFamily(s.metric, s.metric, labels=keys)
            fam = fams[s.metric]
            assert isinstance(fam, CounterMetricFamily | GaugeMetricFamily)
            fam.add_metric([s.labels[k] for k in keys], s.value(now))
        yield from fams.values()


@dataclass(frozen=True)
class Cluster:
    url: str
    start: float
    oom_at: float


@pytest.fixture(scope="module")
def cluster_prometheus(prometheus_bin: str, promtool_bin: str, tmp_path_factory: pytest.TempPathFactory
                       ) -> Iterator[Cluster]:
    now = time.time()
    end = math.floor(now / STEP_S) * STEP_S - 2 * STEP_S
    start = end - HISTORY_S
    oom_at = end - 6 * 3600
    series = cluster(start, oom_at)
    workdir = tmp_path_factory.mktemp("rightsize-prometheus")
    registry = CollectorRegistry()
    registry.register(ClusterCollector(series))
    port = free_port()
    server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    prom = PrometheusProcess(prometheus_bin, workdir, scrape_targets=[f"127.0.0.1:{port}"])
    try:
        prom.storage.mkdir(parents=True)
        backfill(promtool_bin, prom.storage, series, start, end)
        prom.start()
        prom.wait_for_samples('container_cpu_usage_seconds_total{job="opsmind-test"}', 6)
        yield Cluster(prom.url, start, oom_at)
    finally:
        prom.stop()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.mark.integration
def test_fetch_reads_usage_requests_owners_ooms_and_throttling(cluster_prometheus: Cluster) -> None:
    with Prometheus(PrometheusSettings(url=cluster_prometheus.url)) as prom:
        found = fetch_containers(prom, "now-31h", "now", "5m", namespace="shop", now=time.time())
    by = {(c.kind, c.workload, c.container): c for c in found}
    assert set(by) == {("Deployment", "web", "app"), ("StatefulSet", "db", "postgres"),
                       ("DaemonSet", "agent", "agent"), ("Deployment", "worker", "job")}
    web = by[("Deployment", "web", "app")]
    assert web.cpu.ndim == 2 and web.cpu_request == 1.0 and web.memory_limit == 512 * MIB
    cpu = web.cpu.values[np.isfinite(web.cpu.values)]
    # the sine between 0.1 and 0.5 cores (the first rate window, at the start of the history, is partial)
    assert np.percentile(cpu, 1) > 0.09 and cpu.max() < 0.52
    assert web.memory is not None and np.nanmax(web.memory.values) == 300 * MIB
    assert web.throttled_share == pytest.approx(0.01, rel=0.05)
    db = by[("StatefulSet", "db", "postgres")]
    assert len(db.oom_kills) == 1 and abs(db.oom_kills[0] - cluster_prometheus.oom_at) <= 600
    assert db.cpu_limit is None and db.memory_limit == pytest.approx(2.2 * GIB)
    assert by[("Deployment", "worker", "job")].restarts >= 55
    with Prometheus(PrometheusSettings(url=cluster_prometheus.url)) as prom:
        only_db = fetch_containers(prom, "now-31h", "now", "5m", workload="^db$", now=time.time())
    assert [(c.namespace, c.workload) for c in only_db] == [("shop", "db")]
    assert workload_of("web-5d8f7c9b4d-x2x9z") == ("Deployment", "web")


@pytest.mark.integration
def test_cli_recommends_for_each_workload(cluster_prometheus: Cluster, tmp_path: Path) -> None:
    runner = CliRunner()
    args = ["rightsize", "--prometheus", cluster_prometheus.url, "--namespace", "shop", "--start", "now-31h"]
    res = runner.invoke(app, [*args, "--format", "json", "--patch-dir", str(tmp_path / "patches")])
    assert res.exit_code == 0, res.output
    rows = {r["workload"]: r for r in json.loads(res.stdout)}
    assert set(rows) == {"web", "db", "agent", "worker"}
    web, db = rows["web"], rows["db"]
    assert web["defined"] and web["kind"] == "Deployment" and web["replicas"] == pytest.approx(2, abs=0.05)
    assert web["cpu_request_current"] == 1.0 and 0.4 < web["cpu_request"] < 0.6
    assert web["monthly_delta"] < 0 and web["machine"]
    assert db["defined"] and db["kind"] == "StatefulSet" and db["oom_kills"] == 1
    assert db["memory_request"] >= 2.2 * GIB * 1.2  # OOM-killed at its 2.2 GiB limit: bumped by 20 %
    assert not rows["agent"]["defined"] and "zero in every sample" in rows["agent"]["reason"]
    assert not rows["worker"]["defined"] and "crash-looping" in rows["worker"]["reason"]
    files = sorted(p.name for p in (tmp_path / "patches").iterdir())
    assert files == ["shop.deployment.web.yaml", "shop.statefulset.db.yaml"]
    doc = yaml.safe_load((tmp_path / "patches" / "shop.statefulset.db.yaml").read_text())
    assert doc["spec"]["template"]["spec"]["containers"][0]["name"] == "postgres"
    vpa = runner.invoke(app, [*args, "--strategy", "vpa", "--format", "json"])
    assert vpa.exit_code == 0, vpa.output
    vrows = {r["workload"]: r for r in json.loads(vpa.stdout)}
    assert vrows["web"]["defined"] and vrows["db"]["defined"] and vrows["worker"]["defined"]
    table = runner.invoke(app, args)
    assert table.exit_code == 0 and "undefined, because" in table.stdout


@pytest.mark.integration
def test_unreachable_or_empty_prometheus_is_an_error(cluster_prometheus: Cluster) -> None:
    runner = CliRunner()
    empty = runner.invoke(app, ["rightsize", "--prometheus", cluster_prometheus.url, "--namespace", "nowhere"])
    assert empty.exit_code == 2 and "no container CPU usage" in empty.output
    down = runner.invoke(app, ["rightsize", "--prometheus", f"http://127.0.0.1:{free_port()}"])
    assert down.exit_code == 2 and "error:" in down.output
