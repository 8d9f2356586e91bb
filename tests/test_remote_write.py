"""Prometheus remote_write into opsmind: a real Prometheus (tests/servers.py) configured with ``remote_write`` to
opsmind served by uvicorn on a free port; and the decoder on good and broken bodies."""

from __future__ import annotations

import math
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import snappy  # type: ignore[import-untyped]
from fastapi.testclient import TestClient

from opsmind.api import create_app
from opsmind.api.server import BackgroundServer
from opsmind.config import Settings
from opsmind.core.errors import DataError
from opsmind.sources.remote_write import STALE_NAN_BITS, decode, encode, write_request
from opsmind.store import Store
from opsmind.telemetry import Telemetry
from servers import LIVE_VALUES, PrometheusProcess, exporter

T0 = 1_700_000_000_000  # ms


# ---- the decoder ---------------------------------------------------------------------------------------------

def test_decode_round_trip_names_labels_and_times() -> None:
    body = encode([({"__name__": "http_requests_total", "job": "api", "instance": "a:9100"},
                    [(T0, 1.0), (T0 + 15_000, 2.5)]),
                   ({"__name__": "up", "service": "cart"}, [(T0, 1.0)])])
    decoded = decode(body)
    assert decoded.samples == 3 and decoded.stale_markers == 0
    first, second = decoded.series
    assert first.name == "http_requests_total" and dict(first.labels) == {"instance": "a:9100", "job": "api"}
    assert list(first.ts) == [1_700_000_000.0, 1_700_000_015.0] and list(first.values) == [1.0, 2.5]
    assert second.name == "up" and second.service is None  # the store picks `service`, then `app`, `job`, ...


def test_decode_drops_staleness_markers_but_keeps_other_nans() -> None:
    stale = struct.unpack("<d", struct.pack("<Q", STALE_NAN_BITS))[0]
    decoded = decode(encode([({"__name__": "x"}, [(T0, 1.0), (T0 + 1, math.nan), (T0 + 2, stale)])]))
    assert decoded.samples == 2 and decoded.stale_markers == 1
    assert math.isnan(list(decoded.series[0].values)[1])


@pytest.mark.parametrize("body, words", [
    (b"", "empty body"),
    (b"\xff\xff\xff\xff\xff\xff", "not snappy"),
    (b"\x10garbage-garbage-garbage", "not snappy"),
    (snappy.compress(b"\x0a\x05hello-not-a-message"), "not a protobuf WriteRequest"),
    (snappy.compress(write_request([({"job": "no-name"}, [(T0, 1.0)])]).SerializeToString()), "no __name__"),
])
def test_decode_errors_say_what_is_wrong(body: bytes, words: str) -> None:
    with pytest.raises(DataError, match=words):
        decode(body)


def test_decode_refuses_a_body_that_unpacks_too_large() -> None:
    body = snappy.compress(b"\x00" * 100_000)
    with pytest.raises(DataError, match="unpacks to 100000 bytes; at most 1000"):
        decode(body, max_decompressed_bytes=1000)


# ---- the route -----------------------------------------------------------------------------------------------

@pytest.fixture
def client() -> Iterator[tuple[TestClient, Store, Telemetry]]:
    store = Store.open("sqlite://")
    telemetry = Telemetry()
    app = create_app(Settings.model_validate({"api": {"anonymous_scopes": ["write"], "max_body_bytes": 2048}}),
                     store=store, telemetry=telemetry)
    yield TestClient(app, raise_server_exceptions=False), store, telemetry
    store.close()


def test_write_route_stores_samples_and_answers_204(client: tuple[TestClient, Store, Telemetry]) -> None:
    c, store, telemetry = client
    body = encode([({"__name__": "rate", "job": "checkout"}, [(T0, 3.0), (T0 + 15_000, 4.0)])])
    r = c.post("/api/v1/write", content=body, headers={"Content-Encoding": "snappy",
                                                        "Content-Type": "application/x-protobuf"})
    assert r.status_code == 204 and r.content == b""
    (series,) = store.series.list("default")
    assert series.name == "rate" and series.service == "checkout"
    assert store.samples.read("default", series.id).values.tolist() == [3.0, 4.0]
    assert c.post("/api/v1/write", content=body).status_code == 204  # a resend stores nothing twice
    assert store.samples.count("default", series.id) == 2
    assert b'opsmind_ingested_samples_total{path="remote_write",tenant="default"} 2.0' in telemetry.render()


@pytest.mark.parametrize("body, status, code", [
    (b"not snappy at all", 400, "invalid_data"),
    (snappy.compress(b"\xff\xff\xff"), 400, "invalid_data"),
    (b"", 400, "invalid_data"),
    (b"x" * 5000, 413, "payload_too_large"),
])
def test_write_route_errors(client: tuple[TestClient, Store, Telemetry], body: bytes, status: int,
                            code: str) -> None:
    r = client[0].post("/api/v1/write", content=body)
    assert r.status_code == status and r.json()["error"]["code"] == code
    assert "remote_write" in r.json()["error"]["message"] or status == 413


def test_write_route_refuses_remote_write_2(client: tuple[TestClient, Store, Telemetry]) -> None:
    r = client[0].post("/api/v1/write", content=b"x", headers={
        "Content-Type": "application/x-protobuf;proto=io.prometheus.write.v2.Request"})
    assert r.status_code == 415 and "2.0 is not supported" in r.json()["error"]["message"]


# ---- a real Prometheus ----------------------------------------------------------------------------------------

class RemoteWritingPrometheus(PrometheusProcess):
    """A Prometheus scraping ``scrape_targets`` every second and sending everything to ``remote_url``."""

    remote_url: str = ""
    token: str = ""

    def start(self, auth: tuple[str, str] | None = None, timeout_s: float = 60.0) -> None:
        self.storage.mkdir(parents=True, exist_ok=True)
        targets = ", ".join(f'"{t}"' for t in self.scrape_targets)
        config = self.workdir / "prometheus.yml"
        config.write_text(
            "global:\n  scrape_interval: 1s\n"
            f"scrape_configs:\n  - job_name: checkout\n    static_configs:\n      - targets: [{targets}]\n"
            f"remote_write:\n  - url: \"{self.remote_url}\"\n    authorization:\n      credentials: \"{self.token}\"\n"
            "    queue_config:\n      batch_send_deadline: 1s\n      min_backoff: 100ms\n      max_backoff: 1s\n")
        self._launch([self.binary, f"--config.file={config}", f"--storage.tsdb.path={self.storage}",
                      f"--web.listen-address=127.0.0.1:{self.port}"])
        self._wait(lambda: httpx.get(f"{self.url}/-/ready", timeout=2).status_code == 200, timeout_s)


@pytest.mark.integration
def test_a_real_prometheus_remote_writes_into_opsmind(prometheus_bin: str, tmp_path: Path) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'rw.db'}")
    store.tenants.ensure("default")
    _, token = store.tokens.create("default", "prometheus", ["write"])
    telemetry = Telemetry()
    app = create_app(Settings(), store=store, telemetry=telemetry)  # no anonymous scopes: the token is needed
    with BackgroundServer(app) as api, exporter(LIVE_VALUES) as port:
        prom = RemoteWritingPrometheus(prometheus_bin, tmp_path, scrape_targets=[f"127.0.0.1:{port}"])
        prom.remote_url, prom.token = f"{api.url}/api/v1/write", token
        try:
            prom.start()
            deadline = time.monotonic() + 60
            found = []
            while time.monotonic() < deadline:
                found = store.series.list("default", name="opsmind_test_live")
                if len(found) == len(LIVE_VALUES) and all(store.samples.count("default", s.id) >= 2 for s in found):
                    break
                time.sleep(0.5)
        finally:
            prom.stop()
    try:
        assert {s.labels["kind"] for s in found} == set(LIVE_VALUES), prom.log_tail()
        for s in found:
            assert s.service == "checkout"  # from the job label
            assert s.labels["instance"] == f"127.0.0.1:{port}"
            values = store.samples.read("default", s.id).values
            assert set(values.tolist()) == {LIVE_VALUES[s.labels["kind"]]}
        assert store.series.find("default", "up", {"job": "checkout", "instance": f"127.0.0.1:{port}"}) is not None
        assert b'path="remote_write"' in telemetry.render()
    finally:
        store.close()
