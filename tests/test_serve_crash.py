"""Kill -9 of ``opsmind serve`` (the engine and the API in one process) while samples are pushed to its API, then a
restart on the same SQLite store: no acknowledged sample or incident is lost, and no alert is announced twice.

The run, against a real ``python -m opsmind.cli.main serve --config FILE`` on a free loopback port:

1. History of three ``checkout`` series (two hours of 15 s samples) through ``POST /api/v1/ingest``; once the
   engine has learned it (its pushed-series path), a spike on all three through ``POST /api/v1/write`` (remote
   write), and an Alertmanager alert on ``payment`` through ``POST /api/v1/alertmanager/webhook``: two incidents,
   announced on a Slack-style webhook that the test serves and records.
2. A sender thread streams batches of ``catalog`` series (JSON and remote write in turns) and keeps which ones were
   acknowledged; once the engine works on them, the serve process is killed with SIGKILL. The engine's detection
   runs in its default process pool, whose workers must not outlive it.
3. serve starts again on the same configuration and store, the sender delivers what was not acknowledged (as a
   client retries), Alertmanager repeats its alert, and the engine runs several cycles.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from opsmind.sources.remote_write import encode
from opsmind.store import Store
from servers import ManagedProcess, Reply, ScriptedServer

pytestmark = pytest.mark.integration

STEP_S = 15.0
HISTORY = 480  # two hours of 15 s samples
SPIKE_AT = 6  # of the 12 samples after the history, the last 6 are a spike
CHECKOUT = {"latency_p95": 0.2, "errors": 1.5, "cpu": 2.0}  # metric -> level
CATALOG_SERIES = 6
CATALOG_STEP_S = 1.0
CATALOG_BATCH = 15  # timestamps per streamed batch
CATALOG_BATCHES = 40
KILL_AFTER = 10  # acknowledged batches before the kill
DEADLINE_S = 20.0
WEBHOOK = {
    "version": "4", "groupKey": "{}:{alertname=\"HighLatency\"}", "status": "firing", "receiver": "opsmind",
    "groupLabels": {"alertname": "HighLatency"}, "commonLabels": {}, "commonAnnotations": {}, "externalURL": "",
}

Batch = list[tuple[str, dict[str, str], list[tuple[float, float]]]]  # (metric, labels, samples)


# ---- the process ---------------------------------------------------------------------------------------------

@dataclass
class ServeProcess(ManagedProcess):
    """``opsmind serve --config`` run by this Python; each start logs to its own file."""

    config: Path = field(default_factory=Path)
    starts: int = 0
    spawned: set[int] = field(default_factory=set)  # child processes seen (the detection pool's workers)

    name = "serve"

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    def start(self, timeout_s: float = 60.0) -> None:
        self.starts += 1
        self.name = f"serve-{self.starts}"
        self._launch([self.binary, "-m", "opsmind.cli.main", "serve", "--config", str(self.config),
                      "--log-level", "warning"])
        self._wait(lambda: engine_status(self.url)["cycles"] >= 1, timeout_s)

    def children(self) -> set[int]:
        """The process's children now (they are remembered, so that :meth:`stop` ends any left behind)."""
        kids = children(self.pid)
        self.spawned |= kids
        return kids

    def kill9(self) -> set[int]:
        """SIGKILL: no shutdown code runs (the engine thread, the API and the store die mid-work). Returns the
        children it had."""
        assert self._proc is not None
        kids = self.children()
        os.kill(self._proc.pid, signal.SIGKILL)
        assert self._proc.wait(timeout=10) == -signal.SIGKILL
        self._proc = None
        return kids

    def stop(self) -> None:
        super().stop()
        for pid in sorted(self.spawned):  # a worker left behind (started by this test's serve)
            with contextlib.suppress(OSError):  # it ended meanwhile
                if alive(pid) and b"multiprocessing" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    os.kill(pid, signal.SIGKILL)
        self.spawned.clear()


def children(pid: int) -> set[int]:
    """The processes whose parent is ``pid`` (from /proc)."""
    out = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):  # it ended meanwhile
            continue
        if int(fields[1]) == pid:
            out.add(int(stat.parent.name))
    return out


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie does not count)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def engine_status(url: str) -> dict[str, Any]:
    engine: dict[str, Any] = httpx.get(f"{url}/api/v1/health", timeout=5).json()["engine"]
    return engine


def wait_for(what: str, check: Callable[[], bool], serve: ServeProcess, timeout_s: float = DEADLINE_S) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}; serve log:\n{serve.log_tail()}")


def wait_cycles(serve: ServeProcess, n: int) -> None:
    """Until the engine has run ``n`` more cycles (each started after this call)."""
    first = engine_status(serve.url)["cycles"]
    wait_for(f"{n} engine cycles", lambda: engine_status(serve.url)["cycles"] >= first + n + 1, serve)


@pytest.fixture
def slack() -> Iterator[ScriptedServer]:
    """A Slack-style incoming webhook that records every message."""
    with ScriptedServer([Reply(200, "ok")]) as server:
        yield server


@pytest.fixture
def serve(tmp_path: Path, slack: ScriptedServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[ServeProcess]:
    if not Path("/proc/self/stat").exists():
        pytest.skip("needs /proc (Linux) to see the engine's worker processes")
    for name in [n for n in os.environ if n.startswith("OPSMIND_")]:  # the file alone configures it
        monkeypatch.delenv(name)
    proc = ServeProcess(sys.executable, tmp_path)
    proc.config = tmp_path / "opsmind.yaml"
    proc.config.write_text(
        "tenant: default\n"
        f"store: {{url: 'sqlite:///{tmp_path / 'opsmind.db'}'}}\n"
        f"api: {{host: 127.0.0.1, port: {proc.port}, anonymous_scopes: [read, write]}}\n"
        "services: [{name: frontend, calls: [checkout]}]\n"  # a call graph: catalog and payment stay apart
        "engine: {scrape_interval_s: 1, executor: process, workers: 2}\n"
        f"notify: {{min_severity: low, slack_webhook_url: '{slack.url}/services/T000/B000/XXXX'}}\n")
    try:
        yield proc
    finally:
        proc.stop()


# ---- the data ------------------------------------------------------------------------------------------------

def checkout_history(end: float) -> tuple[Batch, Batch]:
    """Two hours of the checkout series up to ``end``, then 12 samples whose last ``SPIKE_AT`` are 8x normal."""
    rng = np.random.default_rng(6)
    history: Batch = []
    spike: Batch = []
    ts = end + STEP_S * np.arange(-HISTORY + 1, 13)
    for metric, level in CHECKOUT.items():
        values = level * (1 + 0.1 * np.sin(2 * np.pi * ts / 3600) + 0.01 * rng.standard_normal(ts.shape[0]))
        values[-SPIKE_AT:] *= 8
        pairs = list(zip(ts.tolist(), values.tolist(), strict=True))
        labels = {"service": "checkout", "instance": "checkout-1"}
        history.append((metric, labels, pairs[:HISTORY]))
        spike.append((metric, labels, pairs[HISTORY:]))
    return history, spike


def catalog_batches(end: float) -> list[Batch]:
    """The streamed series: ``CATALOG_SERIES`` smooth queue depths at 1 s, the last ``CATALOG_BATCHES`` batches
    ending at ``end``."""
    rng = np.random.default_rng(7)
    n = CATALOG_BATCH * CATALOG_BATCHES
    ts = end - CATALOG_STEP_S * np.arange(n)[::-1]
    series = []
    for shard in range(CATALOG_SERIES):
        values = 50 + shard + 5 * np.sin(2 * np.pi * ts / 600) + 0.2 * rng.standard_normal(n)
        series.append(({"service": "catalog", "shard": str(shard)}, ts.tolist(), values.tolist()))
    return [[("queue_depth", labels, list(zip(t[i * CATALOG_BATCH:(i + 1) * CATALOG_BATCH],
                                               v[i * CATALOG_BATCH:(i + 1) * CATALOG_BATCH], strict=True)))
             for labels, t, v in series] for i in range(CATALOG_BATCHES)]


def rfc3339(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def post(client: httpx.Client, url: str, batch: Batch, remote_write: bool) -> httpx.Response:
    """One batch through ``/api/v1/write`` (remote write 1.0) or ``/api/v1/ingest`` (JSON)."""
    if remote_write:
        body = encode([({"__name__": metric, **labels}, [(round(t * 1000), v) for t, v in pairs])
                       for metric, labels, pairs in batch])
        return client.post(f"{url}/api/v1/write", content=body, headers={
            "Content-Type": "application/x-protobuf", "Content-Encoding": "snappy",
            "X-Prometheus-Remote-Write-Version": "0.1.0"})
    return client.post(f"{url}/api/v1/ingest", json={"series": [
        {"name": metric, "labels": labels, "samples": [[t, v] for t, v in pairs]} for metric, labels, pairs in batch]})


class Sender(threading.Thread):
    """Posts ``batches[start:]`` in order, a little apart, JSON and remote write in turns; stops at the first
    failure. ``acked`` are the indexes answered 200/204. After ``slow_after`` acknowledged batches it sends one
    every ``slow_pause_s``, so a loaded machine cannot finish the stream before the test kills the server."""

    def __init__(self, url: str, batches: list[Batch], start: int = 0, pause_s: float = 0.1,
                 slow_after: int | None = None, slow_pause_s: float = 0.5) -> None:
        super().__init__(name="sender", daemon=True)
        self.url, self.batches, self.first, self.pause_s = url, batches, start, pause_s
        self.slow_after, self.slow_pause_s = slow_after, slow_pause_s
        self.acked: list[int] = []
        self.failed: str | None = None

    def run(self) -> None:
        with httpx.Client(timeout=10) as client:
            for i in range(self.first, len(self.batches)):
                try:
                    answer = post(client, self.url, self.batches[i], remote_write=i % 2 == 1)
                except httpx.HTTPError as exc:
                    self.failed = f"batch {i}: {type(exc).__name__}: {exc}"
                    return
                if answer.status_code not in (200, 204):
                    self.failed = f"batch {i}: HTTP {answer.status_code} {answer.text[:200]}"
                    return
                self.acked.append(i)
                slow = self.slow_after is not None and len(self.acked) >= self.slow_after
                time.sleep(self.slow_pause_s if slow else self.pause_s)


# ---- what the receiver and the store hold --------------------------------------------------------------------

Identity = tuple[tuple[str, str], ...]


def messages(slack: ScriptedServer) -> list[tuple[str, Identity]]:
    """Each Slack message as (state, its alert's identity: every fact but the state and the end time)."""
    out = []
    for seen in list(slack.seen):
        fields = next(b["fields"] for b in json.loads(seen.body)["blocks"] if "fields" in b)
        facts = dict(f["text"].lstrip("*").split("*\n", 1) for f in fields)
        out.append((facts.pop("State"), tuple(sorted((k, v) for k, v in facts.items() if k != "Ended"))))
    return out


def firing(slack: ScriptedServer, first: int = 0) -> list[Identity]:
    """The identities of the firing messages, from the ``first`` message on."""
    return [identity for state, identity in messages(slack)[first:] if state == "firing"]


def subjects(identities: Iterable[Identity]) -> set[str]:
    """What the messages are about: ``incident=KEY`` and ``series_id=N``, from their alerts' labels."""
    out: set[str] = set()
    for identity in identities:
        out.update(re.findall(r"\b(incident=[\w-]+|series_id=\d+)\b", dict(identity).get("Labels", "")))
    return out


def incidents(url: str) -> dict[str, dict[str, Any]]:
    listed = httpx.get(f"{url}/api/v1/incidents", params={"limit": 1000}, timeout=5).json()["incidents"]
    return {i["key"]: i for i in listed}


def alert_names(inc: dict[str, Any]) -> set[str]:
    return {a["name"] for a in inc["alerts"]}


def fingerprints(inc: dict[str, Any]) -> set[str]:
    return {a["fingerprint"] for a in inc["alerts"]}


def incident_subjects(incs: dict[str, dict[str, Any]]) -> set[str]:
    """The incidents and the anomalous series in them, as :func:`subjects` names them."""
    return {f"incident={key}" for key in incs} | {f"series_id={a['labels']['series_id']}" for inc in incs.values()
                                                  for a in inc["alerts"] if a["name"] == "OpsmindAnomaly"}


def announced(slack: ScriptedServer, incs: dict[str, dict[str, Any]]) -> bool:
    """Every incident of ``incs`` and each of its anomalous series announced as firing."""
    return incident_subjects(incs) <= subjects(firing(slack))


def stored_samples(db: Path) -> dict[tuple[str, tuple[tuple[str, str], ...]], dict[float, float]]:
    with Store.open(f"sqlite:///{db}") as store:
        out = {}
        for s in store.series.list("default", limit=100_000):
            got = store.samples.read("default", s.id)
            out[(s.name, tuple(sorted(s.labels.items())))] = dict(zip(got.ts.tolist(), got.values.tolist(),
                                                                      strict=True))
        return out


def expected_samples(batches: list[Batch]) -> dict[tuple[str, tuple[tuple[str, str], ...]], dict[float, float]]:
    out: dict[tuple[str, tuple[tuple[str, str], ...]], dict[float, float]] = {}
    for batch in batches:
        for metric, labels, pairs in batch:
            out.setdefault((metric, tuple(sorted(labels.items()))), {}).update(
                (round(t * 1000) / 1000, v) for t, v in pairs)
    return out


def missing(stored: dict[Any, dict[float, float]], wanted: dict[Any, dict[float, float]]) -> list[str]:
    """The wanted samples not stored with their value (``[]`` when all are)."""
    out = []
    for key, samples in wanted.items():
        have = stored.get(key, {})
        out += [f"{key} @ {t}: {have.get(t)} != {v}" for t, v in samples.items()
                if t not in have or not math.isclose(have[t], v, rel_tol=1e-12)]
    return out


# ---- the test ------------------------------------------------------------------------------------------------

def test_kill_9_of_serve_during_ingest_then_restart_loses_and_duplicates_nothing(
        serve: ServeProcess, slack: ScriptedServer, tmp_path: Path) -> None:
    now = time.time()
    history, spike = checkout_history(end=math.floor(now / STEP_S) * STEP_S - 12 * STEP_S)
    stream = catalog_batches(end=math.floor(now) - 1.0)

    # phase 1: history, the engine learns it, then a spike and an Alertmanager alert: two incidents, announced
    serve.start()
    with httpx.Client(timeout=10) as client:
        assert post(client, serve.url, history, remote_write=False).status_code == 200
        wait_for("the engine to learn the checkout series", lambda: engine_status(serve.url)["series"] >= 3, serve)
        wait_cycles(serve, 1)
        assert post(client, serve.url, spike, remote_write=True).status_code == 204
        hook = {**WEBHOOK, "alerts": [{
            "status": "firing", "labels": {"alertname": "HighLatency", "service": "payment", "severity": "critical"},
            "annotations": {"summary": "p95 above 300 ms"}, "startsAt": rfc3339(now - 60),
            "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "", "fingerprint": "0000000000000000"}]}
        answer = client.post(f"{serve.url}/api/v1/alertmanager/webhook", json=hook)
        assert answer.status_code == 200, answer.text
        (webhook_key,) = answer.json()["incidents"]

    def two_incidents_announced() -> bool:
        incs = incidents(serve.url)
        return len(incs) == 2 and any("OpsmindAnomaly" in alert_names(i) for i in incs.values()) \
            and announced(slack, incs)

    wait_for("an anomaly incident and a webhook incident, announced", two_incidents_announced, serve)
    wait_cycles(serve, 2)  # anything else the spike does (more series alerting) is done and announced
    before = incidents(serve.url)
    assert announced(slack, before), messages(slack)
    anomaly_key = next(k for k, i in before.items() if "OpsmindAnomaly" in alert_names(i))
    assert webhook_key != anomaly_key and alert_names(before[webhook_key]) == {"HighLatency"}
    assert before[anomaly_key]["services"] == ["checkout"]
    assert len(before[anomaly_key]["alerts"]) >= 2  # several series of one service
    anomalies_before = httpx.get(f"{serve.url}/api/v1/anomalies", params={"limit": 1000}, timeout=5).json()
    assert anomalies_before["anomalies"]
    notified = Counter(firing(slack))
    assert notified and max(notified.values()) == 1, messages(slack)

    # phase 2: stream catalog batches and kill -9 the process (engine and API) while it takes them
    sender = Sender(serve.url, stream, slow_after=KILL_AFTER)
    sender.start()
    wait_for(f"{KILL_AFTER} acknowledged batches while the engine works on the streamed series",
             lambda: len(sender.acked) >= KILL_AFTER and engine_status(serve.url)["series"] > 3, serve)
    assert engine_status(serve.url)["running"] is True  # this process runs the engine (and the API)
    workers = serve.kill9()
    heard = len(slack.seen)
    sender.join(timeout=15)
    assert not sender.is_alive() and sender.failed is not None  # it was cut off mid-stream
    acked = list(sender.acked)
    assert acked == list(range(len(acked))) and KILL_AFTER <= len(acked) < CATALOG_BATCHES
    db = tmp_path / "opsmind.db"
    wanted = expected_samples([history, spike] + [stream[i] for i in acked])
    assert missing(stored_samples(db), wanted) == []  # every acknowledged sample survived the kill
    assert workers  # the detection pool's processes: they end with the engine, none is left behind
    wait_for("the killed engine's workers to exit", lambda: not any(alive(p) for p in workers), serve, 10.0)

    # phase 3: restart; the client delivers the rest, Alertmanager repeats its alert, the engine runs on
    serve.start()
    serve.children()
    resend = Sender(serve.url, stream, start=len(acked), pause_s=0.0)
    resend.run()
    assert resend.failed is None and resend.acked == list(range(len(acked), CATALOG_BATCHES))
    answer = httpx.post(f"{serve.url}/api/v1/alertmanager/webhook", json=hook, timeout=10)
    assert answer.status_code == 200 and answer.json()["incidents"] == [webhook_key]
    wait_for("the engine to catch up with the catalog series",
             lambda: engine_status(serve.url)["series"] >= 3 + CATALOG_SERIES, serve)
    wait_cycles(serve, 4)
    serve.children()
    after = incidents(serve.url)
    anomalies_after = httpx.get(f"{serve.url}/api/v1/anomalies", params={"limit": 1000}, timeout=5).json()
    fired = Counter(firing(slack))
    serve.stop()

    # nothing acknowledged is lost, nothing is stored twice
    stored = stored_samples(db)
    everything = expected_samples([history, spike, *stream])
    assert missing(stored, everything) == []
    assert {k: len(v) for k, v in stored.items()} == {k: len(v) for k, v in everything.items()}
    # every incident seen before the kill is there, with the same alerts; the webhook's alert opened no other
    for key, inc in before.items():
        assert key in after, (key, sorted(after))
        assert fingerprints(after[key]) == fingerprints(inc)
        assert after[key]["started_at"] == inc["started_at"]
    assert [k for k, i in after.items() if "HighLatency" in alert_names(i)] == [webhook_key]
    assert [k for k, i in after.items() if i["services"] == ["checkout"]] == [anomaly_key]
    # the anomalies recorded before the kill are kept, none twice
    pairs = [(a["series_id"], a["ts"]) for a in anomalies_after["anomalies"]]
    assert len(pairs) == len(set(pairs))
    assert {(a["series_id"], a["ts"]) for a in anomalies_before["anomalies"]} <= set(pairs)
    # no alert announced as firing twice: not the incidents', not the anomalies' announced before the kill
    assert max(fired.values()) == 1, [m for m in messages(slack) if fired[m[1]] > 1]
    assert set(notified) <= set(fired)
    assert not subjects(firing(slack, heard)) & incident_subjects(before), messages(slack)[heard:]
