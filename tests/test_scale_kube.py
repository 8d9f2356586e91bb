"""KubernetesScaler against a small fake of the two REST calls it makes.

No real Kubernetes API server can run in this environment (no cluster, no kube-apiserver binary), so a fake HTTP
server on loopback answers ``GET`` and ``PATCH /apis/apps/v1/namespaces/NS/deployments/NAME/scale`` the way the API
server does (an ``autoscaling/v1`` Scale object), and records every request. The official ``kubernetes`` client
talks to it over real HTTP.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import yaml

from opsmind.core import ConfigError, SourceError
from opsmind.scale.base import ScalingDecision
from opsmind.scale.kube import KubernetesScaler, recommendations

PATH = "/apis/apps/v1/namespaces/shop/deployments/web/scale"


class FakeAPI:
    def __init__(self, replicas: int) -> None:
        self.replicas = replicas
        self.requests: list[tuple[str, str, str, Any]] = []

    def scale(self) -> dict[str, Any]:
        return {"kind": "Scale", "apiVersion": "autoscaling/v1",
                "metadata": {"name": "web", "namespace": "shop"},
                "spec": {"replicas": self.replicas}, "status": {"replicas": self.replicas}}


@pytest.fixture
def api() -> Iterator[tuple[FakeAPI, str]]:
    state = FakeAPI(3)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _send(self, code: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            state.requests.append(("GET", self.path, "", None))
            if self.path != PATH:
                self._send(404, {"kind": "Status", "code": 404, "reason": "NotFound"})
                return
            self._send(200, state.scale())

        def do_PATCH(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = json.loads(self.rfile.read(length) or b"null")
            state.requests.append(("PATCH", self.path, self.headers.get("Content-Type", ""), body))
            if self.path != PATH:
                self._send(404, {"kind": "Status", "code": 404, "reason": "NotFound"})
                return
            state.replicas = int(body["spec"]["replicas"])
            self._send(200, state.scale())

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def decision(desired: int) -> ScalingDecision:
    return ScalingDecision(1_700_000_000.0, "opsmind", 3, desired, "forecast upper bound needs more",
                           {"forecast_upper_rps": 123.4, "mu_rps": 10.0})


def test_dry_run_by_default_calls_nothing(api: tuple[FakeAPI, str]) -> None:
    state, url = api
    scaler = KubernetesScaler.connect("shop", "web", host=url)
    plan = scaler.plan(decision(7))
    out = scaler.execute(plan)
    assert out.status == "dry_run" and plan.replicas == 7 and "opsmind" in plan.reason
    assert state.requests == [] and state.replicas == 3


def test_execute_reads_then_patches_the_scale(api: tuple[FakeAPI, str]) -> None:
    state, url = api
    scaler = KubernetesScaler.connect("shop", "web", host=url)
    out = scaler.execute(scaler.plan(decision(7)), dry_run=False)
    assert (out.status, out.before, out.after) == ("scaled", 3, 7)
    assert [r[0] for r in state.requests] == ["GET", "PATCH"]
    _method, path, ctype, body = state.requests[1]
    assert path == PATH and body == {"spec": {"replicas": 7}} and "merge-patch+json" in ctype
    # Idempotent: the same plan again reads, finds 7 and does not patch.
    again = scaler.execute(scaler.plan(7), dry_run=False)
    assert (again.status, again.before, again.after) == ("unchanged", 7, 7)
    assert [r[0] for r in state.requests] == ["GET", "PATCH", "GET"]


def test_plan_is_bounded_and_errors_are_one_line(api: tuple[FakeAPI, str]) -> None:
    _state, url = api
    scaler = KubernetesScaler.connect("shop", "web", host=url, min_replicas=2, max_replicas=5)
    plan = scaler.plan(decision(9))
    assert plan.replicas == 5 and "bounded" in plan.reason
    with pytest.raises(ConfigError):
        scaler.plan(-1)
    missing = KubernetesScaler.connect("shop", "nope", host=url)
    with pytest.raises(SourceError, match="HTTP 404"):
        missing.execute(missing.plan(4), dry_run=False)
    down = KubernetesScaler.connect("shop", "web", host="http://127.0.0.1:9")
    with pytest.raises(SourceError, match="cannot reach"):
        down.current()


def test_recommendations_json_and_yaml() -> None:
    ds = [decision(7), ScalingDecision(1_700_000_060.0, "opsmind", 7, 7, "hold", {})]
    as_json = json.loads(recommendations(ds, "json"))
    assert len(as_json) == 1 and as_json[0]["action"] == "scale_out" and as_json[0]["desired"] == 7
    assert as_json[0]["time"] == "2023-11-14T22:13:20Z" and as_json[0]["evidence"]["mu_rps"] == 10.0
    as_yaml = yaml.safe_load(recommendations(ds, "yaml", changes_only=False))
    assert [r["action"] for r in as_yaml] == ["scale_out", "hold"]
    with pytest.raises(ConfigError):
        recommendations(ds, "xml")  # type: ignore[arg-type]
