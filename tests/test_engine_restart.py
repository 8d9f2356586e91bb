"""Kill -9 of the engine during its cycles, then a restart: nothing it acknowledged is lost, nothing is recorded
twice, and the records equal those of a run that was never interrupted."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from opsmind.store import Store

# The engine on SQLite reading the simulator through its metrics endpoint, cycles back to back. After every cycle
# it prints the last committed sample time of each series (what it has acknowledged). Started on a database that
# already has samples, it resumes the (deterministic) simulation from the last stored sample.
DRIVER = """
import json, sys
from opsmind.engine.demo import DemoRun, demo_settings
from opsmind.store import Store

db, end = sys.argv[1], float(sys.argv[2])
settings = demo_settings(f"sqlite:///{db}", port=0, history_s=7200.0, services=("frontend", "cart", "checkout"))
store = Store.open(settings.store)
run = DemoRun(settings, store, seed=1, warmup_s=7200.0, every_s=300.0, incident_s=180.0, first_s=60.0)
lasts = [store.samples.last("default", s.id) for s in store.series.list("default")]
resume = max((x[0] for x in lasts if x is not None), default=None)
run.warm_up(until=resume if resume is not None and resume > run.start_s else None)
print("START", run.t - run.start_s, flush=True)
while run.t < run.start_s + end:
    _, report = run.step()
    if report is not None:
        acked = {str(i.id): i.last_ts for i in run.engine._series.values()}
        print("ACK", json.dumps(acked), flush=True)
run.close()
print("DONE", flush=True)
"""

END_S = 10 * 60.0


def _driver(tmp_path: Path, db: Path) -> list[str]:
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    return [sys.executable, str(script), str(db), str(END_S)]


def _records(db: Path) -> dict[str, Any]:
    with Store.open(f"sqlite:///{db}") as store:
        series = {s.id: s.selector for s in store.series.list("default")}
        anomalies = sorted((series[a.series_id], a.ts, round(a.probability, 9), a.severity)
                           for a in store.anomalies.list("default", limit=100_000))
        samples = {series[sid]: store.samples.count("default", sid) for sid in series}
        incidents = store.incidents.list("default", limit=10_000)
        alerts = [(a.fingerprint, a.starts_at) for inc in incidents for a in inc.alerts]
        return {"anomalies": anomalies, "samples": samples, "alerts": alerts,
                "incidents": sorted((i.key, i.started_at, tuple(sorted(a.fingerprint for a in i.alerts)),
                                     i.root_cause) for i in incidents)}


def test_kill_9_during_ingest_then_restart_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    whole = tmp_path / "whole.db"
    done = subprocess.run(_driver(tmp_path, whole), capture_output=True, text=True, timeout=240)
    assert done.returncode == 0 and "DONE" in done.stdout, done.stderr[-2000:]
    expected = _records(whole)
    assert expected["anomalies"] and expected["incidents"]

    killed = tmp_path / "killed.db"
    proc = subprocess.Popen(_driver(tmp_path, killed), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    acked: dict[str, float] = {}
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("ACK "):
            acked = json.loads(line[4:])
            if len(acked) == 15 and _cycles(acked) >= 4:
                break
    time.sleep(0.15)  # into the next cycle: pulling, detecting, writing
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL

    with Store.open(f"sqlite:///{killed}") as store:  # everything acknowledged before the kill is stored
        for sid, last in acked.items():
            stored = store.samples.last("default", int(sid))
            assert stored is not None and stored[0] >= last

    again = subprocess.run(_driver(tmp_path, killed), capture_output=True, text=True, timeout=240)
    assert again.returncode == 0 and "DONE" in again.stdout, again.stderr[-2000:]
    assert not again.stdout.startswith("START 0.0")  # it resumed, it did not start over
    got = _records(killed)
    assert len(got["alerts"]) == len(set(got["alerts"]))  # no alert twice
    assert got["samples"] == expected["samples"]
    assert got["anomalies"] == expected["anomalies"]
    assert got["incidents"] == expected["incidents"]


_SEEN: list[float] = []


def _cycles(acked: dict[str, float]) -> int:
    """How many distinct cycles have been acknowledged so far."""
    top = max(acked.values())
    if not _SEEN or _SEEN[-1] != top:
        _SEEN.append(top)
    return len(_SEEN)
