"""Real servers for tests: a Prometheus process, a metrics exporter, and a scripted HTTP server.

Each starts on a free loopback port and stops when the test (or session) is over. ``tests/conftest.py`` turns
them into fixtures.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
import time
import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import import_module
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry, Gauge, start_http_server

PROMETHEUS_PACKAGE = "prometheus"
ALERTMANAGER_PACKAGE = "prometheus-alertmanager"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def require_binary(name: str, package: str = PROMETHEUS_PACKAGE) -> str:
    """The path of ``name``; a missing binary fails the test in CI (``CI=true``) and skips it elsewhere."""
    path = shutil.which(name) or (f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").exists() else None)
    if path is None:
        message = f"{name} is not installed: add the Debian package {package!r} to .ci/apt-packages.txt"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message + " (CI must install it)")
        pytest.skip(message + f" (locally: apt-get install -y {package})")
    return path


@contextmanager
def exporter(values: dict[str, float]) -> Iterator[int]:
    """Serve ``opsmind_test_live{kind=K} V`` for each ``K: V`` with prometheus_client; yields the port."""
    registry = CollectorRegistry()
    gauge = Gauge("opsmind_test_live", "A constant the tests read back through Prometheus.", ["kind"],
                  registry=registry)
    for kind, value in values.items():
        gauge.labels(kind=kind).set(value)
    port = free_port()
    server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    try:
        yield port
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def backfill(promtool: str, storage: Path, series: Iterable[tuple[str, int, float]], metric: str) -> None:
    """Write ``(labels, unix_seconds, value)`` samples of a gauge into TSDB blocks under ``storage``."""
    lines = [f"# TYPE {metric} gauge"]
    lines += [f"{metric}{{{labels}}} {value!r} {ts}" for labels, ts, value in series]
    lines.append("# EOF")
    source = storage.parent / "backfill.om"
    source.write_text("\n".join(lines) + "\n")
    subprocess.run([promtool, "tsdb", "create-blocks-from", "openmetrics", "--quiet", str(source), str(storage)],
                   check=True, capture_output=True, timeout=300)


@dataclass
class ManagedProcess:
    """A server binary run on a free loopback port in its own work directory, with its log kept there."""

    binary: str
    workdir: Path
    port: int = field(default_factory=free_port)
    _proc: subprocess.Popen[bytes] | None = None

    name = "server"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _launch(self, args: list[str]) -> None:
        log = (self.workdir / f"{self.name}.log").open("wb")
        self._proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)

    def _wait(self, ready: object, timeout_s: float) -> None:
        assert callable(ready)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited: {self.log_tail()}")
            try:
                if ready():
                    return
            except (httpx.HTTPError, KeyError, ValueError):
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} not ready after {timeout_s} s: {self.log_tail()}")

    def log_tail(self) -> str:
        log = self.workdir / f"{self.name}.log"
        return log.read_text(errors="replace")[-2000:] if log.exists() else ""

    def stop(self) -> None:
        if self._proc is None:
            return
        self._proc.terminate()
        try:
            self._proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(timeout=5)
        self._proc = None


@dataclass
class PrometheusProcess(ManagedProcess):
    """A Prometheus server on a free loopback port with its own storage directory."""

    scrape_targets: list[str] = field(default_factory=list)
    web_config: str | None = None

    name = "prometheus"

    @property
    def storage(self) -> Path:
        return self.workdir / "data"

    def start(self, auth: tuple[str, str] | None = None, timeout_s: float = 60.0) -> None:
        self.storage.mkdir(parents=True, exist_ok=True)
        targets = ", ".join(f'"{t}"' for t in self.scrape_targets)
        config = self.workdir / "prometheus.yml"
        config.write_text(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
            + (f"scrape_configs:\n  - job_name: opsmind-test\n    static_configs:\n      - targets: [{targets}]\n"
               if self.scrape_targets else "")
        )
        args = [self.binary, f"--config.file={config}", f"--storage.tsdb.path={self.storage}",
                f"--web.listen-address=127.0.0.1:{self.port}", "--storage.tsdb.retention.time=100y"]
        if self.web_config is not None:
            web = self.workdir / "web.yml"
            web.write_text(self.web_config)
            args.append(f"--web.config.file={web}")
        self._launch(args)
        self._wait(lambda: httpx.get(f"{self.url}/-/ready", auth=auth, timeout=2).status_code == 200, timeout_s)

    def wait_for_samples(self, promql: str, count: int, timeout_s: float = 60.0) -> None:
        """Block until an instant query returns at least ``count`` series."""

        def ready() -> bool:
            body = httpx.get(f"{self.url}/api/v1/query", params={"query": promql}, timeout=2).json()
            return len(body["data"]["result"]) >= count

        self._wait(ready, timeout_s)


@dataclass
class AlertmanagerProcess(ManagedProcess):
    """An Alertmanager (Debian ``prometheus-alertmanager``) on a free loopback port, clustering off.

    With ``webhook_url`` every alert group is sent there at once (group_wait 0 s, group_interval 1 s).
    """

    webhook_url: str | None = None

    name = "alertmanager"

    def start(self, timeout_s: float = 60.0) -> None:
        config = self.workdir / "alertmanager.yml"
        receiver = "opsmind-test"
        hook = (f"    webhook_configs:\n      - url: \"{self.webhook_url}\"\n        send_resolved: true\n"
                if self.webhook_url else "")
        config.write_text(
            f"route:\n  receiver: \"{receiver}\"\n  group_by: [\"alertname\", \"service\"]\n  group_wait: 0s\n"
            f"  group_interval: 1s\n  repeat_interval: 1h\nreceivers:\n  - name: \"{receiver}\"\n{hook}")
        (self.workdir / "am-data").mkdir(exist_ok=True)
        self._launch([self.binary, f"--config.file={config}", f"--storage.path={self.workdir / 'am-data'}",
                      f"--web.listen-address=127.0.0.1:{self.port}", "--cluster.listen-address="])
        self._wait(lambda: httpx.get(f"{self.url}/-/ready", timeout=2).status_code == 200, timeout_s)


@dataclass
class Reply:
    """One scripted answer: status, JSON body text, and a delay before answering."""

    status: int = 200
    body: str = '{"status":"success","data":{"resultType":"vector","result":[]}}'
    delay_s: float = 0.0


@dataclass
class Seen:
    """One request the scripted server received."""

    path: str
    headers: dict[str, str]
    body: str


class ScriptedServer:
    """An HTTP server on a free loopback port answering with ``replies`` in order (the last one repeats)."""

    def __init__(self, replies: list[Reply]) -> None:
        self.replies = list(replies) or [Reply()]
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> ScriptedServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def _next(self, seen: Seen) -> Reply:
        with self._lock:
            self.seen.append(seen)
            return self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self._answer()

            def do_GET(self) -> None:
                self._answer()

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode() if length else ""
                reply = owner._next(Seen(self.path, dict(self.headers.items()), body))
                time.sleep(reply.delay_s)
                payload = reply.body.encode()
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:  # the client gave up (a timeout test)
                    pass

            def log_message(self, format: str, *args: object) -> None:
                return

        return Handler


# ---- fixtures (imported into conftest.py) -------------------------------------------------------------------

BACKFILL_START_S = 1_704_067_200  # 2024-01-01T00:00:00Z
BACKFILL_STEP_S = 15
BACKFILL_COUNT = 2 * 86400 // BACKFILL_STEP_S + 1  # two days of 15 s samples, both ends included
BACKFILL_B_FROM = BACKFILL_COUNT // 2  # series "b" starts half way: NaN before it in a range query
LIVE_VALUES = {"a": 42.0, "b": 7.0}


@dataclass(frozen=True)
class RunningPrometheus:
    """A running Prometheus: live scrapes of ``opsmind_test_live`` and backfilled ``opsmind_test_history``.

    ``opsmind_test_history{series="a"}`` is ``i`` at ``BACKFILL_START_S + 15 * i`` for every ``i`` below
    ``BACKFILL_COUNT``; ``{series="b"}`` is ``2 * i`` from ``i = BACKFILL_B_FROM`` on.
    """

    url: str
    exporter_port: int


def history_samples() -> Iterator[tuple[str, int, float]]:
    for i in range(BACKFILL_COUNT):
        yield 'series="a"', BACKFILL_START_S + BACKFILL_STEP_S * i, float(i)
    for i in range(BACKFILL_B_FROM, BACKFILL_COUNT):
        yield 'series="b"', BACKFILL_START_S + BACKFILL_STEP_S * i, float(2 * i)


@pytest.fixture(scope="session")
def prometheus_bin() -> str:
    """The prometheus binary (fails in CI, skips locally when the Debian package is missing)."""
    return require_binary("prometheus")


@pytest.fixture(scope="session")
def promtool_bin() -> str:
    return require_binary("promtool")


@pytest.fixture(scope="session")
def prometheus(prometheus_bin: str, promtool_bin: str, tmp_path_factory: pytest.TempPathFactory
               ) -> Iterator[RunningPrometheus]:
    """A real Prometheus scraping a prometheus_client exporter every second, with two days of backfill."""
    workdir = tmp_path_factory.mktemp("prometheus")
    with exporter(LIVE_VALUES) as port:
        server = PrometheusProcess(prometheus_bin, workdir, scrape_targets=[f"127.0.0.1:{port}"])
        server.storage.mkdir(parents=True)
        backfill(promtool_bin, server.storage, history_samples(), "opsmind_test_history")
        try:
            server.start()
            server.wait_for_samples("opsmind_test_live", len(LIVE_VALUES))
            yield RunningPrometheus(server.url, port)
        finally:
            server.stop()


BASIC_USER, BASIC_PASSWORD = "opsmind", "s3cret pass"


def bcrypt_hash(password: str) -> str | None:
    """A bcrypt hash from the ``bcrypt`` package or the system crypt(3), or None when neither can make one."""
    try:
        module = import_module("bcrypt")
        hashed: bytes = module.hashpw(password.encode(), module.gensalt(rounds=4))
        return hashed.decode()
    except ImportError:
        pass
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            crypt = import_module("crypt")
        except ImportError:
            return None
    result = crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16))
    return result if isinstance(result, str) and result.startswith("$2") else None


@pytest.fixture
def prometheus_basic_auth(prometheus_bin: str, tmp_path: Path) -> Iterator[str]:
    """A real Prometheus that demands basic auth ``BASIC_USER``/``BASIC_PASSWORD`` (``--web.config.file``)."""
    hashed = bcrypt_hash(BASIC_PASSWORD)
    if hashed is None:
        pytest.skip("no bcrypt hasher (python bcrypt or crypt(3)); the header itself is tested on a local server")
    server = PrometheusProcess(prometheus_bin, tmp_path, web_config=f'basic_auth_users:\n  {BASIC_USER}: "{hashed}"\n')
    try:
        server.start(auth=(BASIC_USER, BASIC_PASSWORD))
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="session")
def alertmanager_bin() -> str:
    """The Alertmanager binary (fails in CI, skips locally when the Debian package is missing)."""
    return require_binary("prometheus-alertmanager", ALERTMANAGER_PACKAGE)


@pytest.fixture
def alertmanager(alertmanager_bin: str, tmp_path: Path) -> Iterator[AlertmanagerProcess]:
    """A real Alertmanager with no receivers configured (alerts in, API v2 out)."""
    server = AlertmanagerProcess(alertmanager_bin, tmp_path)
    try:
        server.start()
        yield server
    finally:
        server.stop()
