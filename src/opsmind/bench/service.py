"""``opsmind bench service``: the API under load, and remote_write ingest throughput.

1. A store (SQLite in a temporary folder, or a PostgreSQL URL) is seeded with a small fleet: ``services``
   services with five series each (two hours of 15 s samples), anomalies, forecasts, scale recommendations and
   incidents, and a read/write API token.
2. The app runs under uvicorn in its own process on a free loopback port (``workers`` worker processes, one by
   default).
3. Reads: an open-loop client (aiohttp, 32 keep-alive connections) sends ``rate`` requests per second for
   ``duration_s`` seconds, spread over the read endpoints the dashboard uses, each at its scheduled time whether
   or not earlier ones have answered (so a slow server shows up as latency, not as a lower request rate). Latency
   is measured from the scheduled time; an error is a transport failure or a status >= 400 (their kinds are
   printed and noted).
4. Ingest: remote_write bodies (``batch_samples`` samples each: 10 samples of each of ``batch_samples / 10``
   series, snappy + protobuf as Prometheus sends them) are posted by ``ingest_concurrency`` senders as fast as the
   server acknowledges them, for ``ingest_s`` seconds; samples/s counts acknowledged (204) samples only.

Metric keys: ``rps`` (answered requests per second), ``errors``, ``p50_ms``, ``p99_ms``, ``ingest_samples_per_s``.
"""

from __future__ import annotations

import asyncio
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from opsmind.bench.report import BenchResult, BenchRow

if TYPE_CHECKING:  # imported where used, so `opsmind --help` does not load them
    import numpy as np

    from opsmind.store import Store

__all__ = ["ServiceBenchSettings", "app_from_environment", "run_service_bench", "seed_fleet", "service"]

TENANT = "bench"
_CONNECTIONS = 32  # keep-alive connections of the read load generator
_METRICS = ("rate", "errors", "latency_p95", "cpu", "memory")


@dataclass(frozen=True)
class ServiceBenchSettings:
    duration_s: float = 30.0
    rate: float = 200.0
    ingest_s: float = 5.0
    ingest_concurrency: int = 4
    batch_samples: int = 2000
    services: int = 8
    workers: int = 1
    store_url: str | None = None  # None: SQLite in a temporary folder
    seed: int = 0


@dataclass(frozen=True)
class Fleet:
    token: str
    series_ids: list[int]
    load_series_ids: list[int]


def _forecast(start: float, rng: np.random.Generator, steps: int = 24) -> Any:
    import numpy as np

    from opsmind.forecast.base import Forecast

    stamps = ((start + 300.0 * np.arange(1, steps + 1)) * 1000).astype("datetime64[ms]").astype("datetime64[ns]")
    mean = 100 + 10 * rng.standard_normal(steps)
    return Forecast(stamps, mean, {80: (mean - 8, mean + 8), 95: (mean - 15, mean + 15)}, "ensemble")


def seed_fleet(store: Store, now: float, *, services: int = 8, hours: float = 2.0, step_s: float = 15.0,
               seed: int = 0) -> Fleet:
    """Seed ``store`` (tenant ``bench``) with a fleet like a small production one; returns a read/write token."""
    import numpy as np

    from opsmind.core.alerts import Alert
    from opsmind.incidents.correlate import Incident, TrackedAlert

    rng = np.random.default_rng(seed)
    store.tenants.ensure(TENANT)
    ts = now - step_s * np.arange(int(hours * 3600 / step_s), 0, -1)
    ids: list[int] = []
    load: list[int] = []
    for i in range(services):
        svc = f"svc-{i}"
        for metric in _METRICS:
            sid = store.series.upsert(TENANT, metric, {"service": svc}).id
            ids.append(sid)
            store.samples.insert(TENANT, sid, ts, 100.0 + 10.0 * rng.standard_normal(int(ts.shape[0])))
            if metric == "rate":
                load.append(sid)
                for k in range(6):
                    store.forecasts.save(TENANT, sid, _forecast(now - 3600 * k, rng), issued_at=now - 3600 * k)
        for _ in range(25):
            sid = ids[-1 - int(rng.integers(0, len(_METRICS)))]
            store.anomalies.record(TENANT, sid, float(now - rng.uniform(0, hours * 3600)), float(rng.uniform(0.5, 1)),
                                   severity="high", detector="opsmind", evidence={"value": 1.0, "baseline": 0.5})
        for k in range(4):
            store.recommendations.save(TENANT, "scale", svc, now - 900 * k, service=svc, summary="scale",
                                       payload={"replicas": int(rng.integers(2, 9)), "current": 3})
        alert = Alert(labels={"alertname": "HighLatency", "service": svc, "severity": "high"}, starts_at=now - 600)
        store.incidents.save(TENANT, Incident(
            id=f"inc-bench{i:05d}", started_at=now - 600, last_activity=now - 60, services={svc},
            alerts={alert.fingerprint: TrackedAlert(alert, svc, now - 600, now - 60)}, priority="P2"))
    _, token = store.tokens.create(TENANT, "bench", ["write"])
    return Fleet(token, ids, load)


def app_from_environment() -> Any:
    """The app from ``OPSMIND_*`` variables (``uvicorn --factory opsmind.bench.service:app_from_environment``)."""
    from opsmind.api import create_app
    from opsmind.config import Settings

    return create_app(Settings())


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _ServerProcess:
    def __init__(self, store_url: str, workdir: Path, workers: int = 1) -> None:
        self.port = _free_port()
        env = {**os.environ, "OPSMIND_STORE__URL": store_url, "OPSMIND_TENANT": TENANT}
        self.log = (workdir / "server.log").open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--factory", "opsmind.bench.service:app_from_environment",
             "--host", "127.0.0.1", "--port", str(self.port), "--log-level", "warning", "--no-access-log",
             "--timeout-graceful-shutdown", "2", "--workers", str(workers)],
            env=env, stdout=self.log, stderr=subprocess.STDOUT)
        self.logfile = workdir / "server.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait(self, timeout_s: float = 60.0) -> None:
        import httpx

        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the API server exited: {self.logfile.read_text(errors='replace')[-2000:]}")
            try:
                if httpx.get(f"{self.url}/api/v1/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"the API server did not answer within {timeout_s} s")

    def cpu_s(self) -> float:
        """CPU seconds the server process has used (Linux; NaN elsewhere or with several workers)."""
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, ValueError, IndexError):
            return float("nan")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)
        self.log.close()


def _read_paths(fleet: Fleet, rng: np.random.Generator, n: int, now: float) -> list[str]:
    """The requests the dashboard makes (overview, incidents, anomalies, a service, a series), in rotation."""
    services = len(fleet.load_series_ids)

    def one(k: int) -> str:
        svc = f"svc-{int(rng.integers(0, services))}"
        sid = int(rng.choice(fleet.series_ids))
        load = int(rng.choice(fleet.load_series_ids))
        return [
            "/api/v1/services", "/api/v1/incidents?status=open&limit=50", "/api/v1/anomalies?limit=8",
            f"/api/v1/series?service={svc}&limit=50", f"/api/v1/anomalies?service={svc}&limit=30",
            f"/api/v1/series/{sid}", f"/api/v1/series/{sid}/samples?start={now - 3600:.0f}",
            f"/api/v1/forecasts?series_id={load}&limit=1", f"/api/v1/anomalies?series_id={sid}&limit=500",
            "/api/v1/recommendations?status=open",
        ][k % 10]

    return [one(k) for k in range(n)]


def _no_retried_imports() -> None:
    """httpcore imports ``sniffio`` on every request and, when it is not installed, Python searches the whole path
    each time (a millisecond per request here); remember the absence once."""
    import importlib.util

    if "sniffio" not in sys.modules and importlib.util.find_spec("sniffio") is None:
        sys.modules["sniffio"] = None  # type: ignore[assignment]  # `import sniffio` now fails at once


@dataclass
class ReadRun:
    """What the read load gave: latencies (s, from each request's scheduled time), failures by kind (``HTTP 503``,
    ``ServerDisconnectedError``, ...) with one example each, and the wall time."""

    latencies: list[float]
    failures: dict[str, int]
    examples: dict[str, str]
    wall_s: float

    @property
    def errors(self) -> int:
        return sum(self.failures.values())


def _run(coro: Any) -> Any:
    """``asyncio.run`` on uvloop when it is installed (a cheaper event loop for the load generator)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


async def _drive_reads(url: str, token: str, paths: list[str], rate: float, *,
                       connections: int = _CONNECTIONS) -> ReadRun:
    """Open loop: request ``k`` is due at ``start + k / rate`` and its latency counts from then, whether it waits
    for one of the ``connections`` (kept alive) or not: a slow server shows as latency, not as a lower rate. The
    client is aiohttp, which costs the load generator a fraction of httpx's CPU per request."""
    try:
        import aiohttp
    except ImportError:
        raise RuntimeError("opsmind bench service needs aiohttp for its load generator: "
                           "pip install 'opsmind[bench]'") from None

    latencies: list[float] = []
    failures: dict[str, int] = {}
    examples: dict[str, str] = {}
    gate = asyncio.Semaphore(connections)
    connector = aiohttp.TCPConnector(limit=connections, force_close=False, enable_cleanup_closed=True)
    timeout = aiohttp.ClientTimeout(total=60.0)
    async with aiohttp.ClientSession(base_url=url, connector=connector, timeout=timeout,
                                     headers={"Authorization": f"Bearer {token}"}) as session:
        clock = time.perf_counter  # not loop.time(): uvloop's clock has millisecond steps

        def fail(kind: str, example: str) -> None:
            failures[kind] = failures.get(kind, 0) + 1
            examples.setdefault(kind, example)

        async def one(path: str, due: float) -> None:
            async with gate:
                try:
                    async with session.get(path) as r:
                        body = await r.read()
                        if r.status >= 400:
                            fail(f"HTTP {r.status}", f"{path}: {body[:200].decode(errors='replace')}")
                except (aiohttp.ClientError, TimeoutError) as exc:
                    fail(type(exc).__name__, f"{path}: {exc}")
            latencies.append(clock() - due)

        start = clock() + 0.05
        tasks = []
        for k, path in enumerate(paths):
            due = start + k / rate
            delay = due - clock()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(path, due)))
        await asyncio.gather(*tasks)
        return ReadRun(latencies, failures, examples, clock() - start)


def _bodies(batch_samples: int, count: int, now_ms: int) -> list[bytes]:
    from opsmind.sources.remote_write import encode

    per_series = 10
    n_series = max(1, batch_samples // per_series)
    bodies = []
    for b in range(count):
        group, step = b % 5, b // 5  # 5 groups of series; each batch moves its group 10 samples ahead
        base = now_ms + step * per_series * 15_000
        bodies.append(encode(
            ({"__name__": "bench_ingest", "job": f"svc-{group}", "instance": f"10.0.{group}.{i}:9100"},
             [(base + k * 15_000, float(k)) for k in range(per_series)])
            for i in range(n_series)))
    return bodies


async def _drive_ingest(url: str, token: str, bodies: list[bytes], samples_per_body: int, duration_s: float,
                        concurrency: int) -> tuple[float, int]:
    """Post bodies as fast as they are acknowledged; returns (acknowledged samples/s, failed requests)."""
    import httpx

    _no_retried_imports()
    headers = {"Authorization": f"Bearer {token}", "Content-Encoding": "snappy",
               "Content-Type": "application/x-protobuf", "X-Prometheus-Remote-Write-Version": "0.1.0"}
    queue = list(reversed(bodies))
    done = failed = 0
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60.0) as client:
        loop = asyncio.get_running_loop()
        start = loop.time()
        end = start + duration_s

        async def sender() -> None:
            nonlocal done, failed
            while queue and loop.time() < end:
                r = await client.post("/api/v1/write", content=queue.pop())
                if r.status_code == 204:
                    done += samples_per_body
                else:
                    failed += 1

        await asyncio.gather(*(sender() for _ in range(concurrency)))
        return done / (loop.time() - start), failed


def run_service_bench(settings: ServiceBenchSettings | None = None,
                      progress: Callable[[str], None] | None = None) -> BenchResult:
    """Run the benchmark (see the module docstring)."""
    import numpy as np

    from opsmind.store import Store

    cfg = settings or ServiceBenchSettings()
    say = progress or (lambda _msg: None)
    began = time.perf_counter()
    workdir = Path(tempfile.mkdtemp(prefix="opsmind-bench-service-"))
    url = cfg.store_url or f"sqlite:///{workdir / 'opsmind.db'}"
    rng = np.random.default_rng(cfg.seed)
    now = time.time()
    try:
        say(f"seeding {cfg.services} services into {url.split('@')[-1]}")
        with Store.open(url) as store:
            if cfg.store_url is not None and TENANT in {t.id for t in store.tenants.list()}:
                store.tenants.delete(TENANT)  # a previous run's records
            fleet = seed_fleet(store, now, services=cfg.services, seed=cfg.seed)
        server = _ServerProcess(url, workdir, cfg.workers)
        try:
            server.wait()
            paths = _read_paths(fleet, rng, int(cfg.duration_s * cfg.rate), now)
            _run(_drive_reads(server.url, fleet.token, _read_paths(fleet, rng, 50, now), 50.0))  # warm-up
            load_before = os.getloadavg()[0]
            say(f"reads: {cfg.rate:g} requests/s for {cfg.duration_s:g} s")
            server_cpu, client_cpu = server.cpu_s(), time.process_time()
            reads: ReadRun = _run(_drive_reads(server.url, fleet.token, paths, cfg.rate))
            server_cpu = (server.cpu_s() - server_cpu) / len(paths) * 1000.0
            client_cpu = (time.process_time() - client_cpu) / len(paths) * 1000.0
            for kind, n in sorted(reads.failures.items()):
                say(f"[red]{n} failed reads: {kind}, e.g. {reads.examples[kind]}[/red]")
            samples_per_body = max(1, cfg.batch_samples // 10) * 10
            n_bodies = int(cfg.ingest_s * 200_000 / samples_per_body) + cfg.ingest_concurrency
            say(f"ingest: encoding {n_bodies} remote_write bodies of {samples_per_body} samples")
            bodies = _bodies(cfg.batch_samples, n_bodies, int(now * 1000) + 86_400_000)
            say(f"ingest: posting for {cfg.ingest_s:g} s with {cfg.ingest_concurrency} senders")
            ingest_rate, ingest_failed = asyncio.run(_drive_ingest(server.url, fleet.token, bodies,
                                                                   samples_per_body, cfg.ingest_s,
                                                                   cfg.ingest_concurrency))
            load_after = os.getloadavg()[0]
        finally:
            server.stop()
        if cfg.store_url is not None:
            with Store.open(url) as store:
                store.tenants.delete(TENANT)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    lat_ms = np.asarray(reads.latencies) * 1000.0
    metrics = {"rps": len(reads.latencies) / reads.wall_s, "errors": float(reads.errors + ingest_failed),
               "p50_ms": float(np.percentile(lat_ms, 50)), "p99_ms": float(np.percentile(lat_ms, 99)),
               "ingest_samples_per_s": ingest_rate}
    dialect = "postgresql" if url.startswith("postgres") else "sqlite"
    notes = [
        f"{cfg.rate:g} requests/s offered for {cfg.duration_s:g} s (open loop) over the 10 reads the dashboard makes; "
        f"{cfg.services} services x 5 series, 2 h of 15 s samples; store {dialect}; uvicorn with {cfg.workers} "
        "worker(s).",
        f"remote_write: {samples_per_body} samples per request, {cfg.ingest_concurrency} concurrent senders, "
        f"{cfg.ingest_s:g} s; errors count failed reads and refused writes.",
        (f"CPU per read request: {server_cpu:.1f} ms in the server, " if cfg.workers == 1 else
         "CPU per read request: ") + f"{client_cpu:.1f} ms in the load generator (aiohttp, {_CONNECTIONS} "
        "keep-alive connections).",
        "failed reads: " + (", ".join(f"{n} {kind} (e.g. {reads.examples[kind][:120]})"
                                      for kind, n in sorted(reads.failures.items())) or "none") +
        (f"; failed remote_write requests: {ingest_failed}" if ingest_failed else "") + ".",
        f"machine: {os.cpu_count()} CPUs ({platform.processor() or platform.machine()}), load average "
        f"{load_before:.1f} before and {load_after:.1f} after the run (client and server share it).",
    ]
    return BenchResult(benchmark="service", data=f"synthetic fleet ({dialect})", runtime_s=time.perf_counter() - began,
                       results=[BenchRow("opsmind", metrics)], notes=notes)


def service(
    duration: Annotated[float, typer.Option("--duration", help="Seconds of read load.", min=1)] = 30.0,
    rate: Annotated[float, typer.Option("--rate", help="Read requests per second (open loop).", min=1)] = 200.0,
    json_path: Annotated[Path | None, typer.Option("--json", help="Write the results as JSON here.")] = None,
    store: Annotated[str | None, typer.Option("--store", help="Database URL (default: SQLite in a temporary "
                                         "folder); a PostgreSQL URL is allowed.")] = None,
    ingest: Annotated[float, typer.Option("--ingest-seconds", help="Seconds of remote_write ingest.", min=1)] = 5.0,
    workers: Annotated[int, typer.Option("--workers", help="uvicorn worker processes.", min=1)] = 1,
    docs: Annotated[Path | None, typer.Option("--docs", help="Markdown file whose section for this benchmark is "
                                         "replaced.")] = Path("docs/benchmarks.md"),
) -> None:
    """The API under 200 requests/s of dashboard reads (errors, p99 latency) and remote_write ingest samples/s."""
    from rich.console import Console

    from opsmind.bench.report import publish

    console = Console()
    cfg = ServiceBenchSettings(duration_s=duration, rate=rate, ingest_s=ingest, store_url=store, workers=workers)
    result = run_service_bench(cfg, progress=lambda msg: console.print(f"[dim]{msg}[/dim]"))
    result.command = "opsmind bench service" + (f" --duration {duration:g}" if duration != 30.0 else "") + \
        (f" --rate {rate:g}" if rate != 200.0 else "") + (f" --workers {workers}" if workers != 1 else "")
    publish(result, json_path=json_path, docs_path=docs, console=console)
