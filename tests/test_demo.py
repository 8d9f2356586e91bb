"""``opsmind demo``: the fast-forwarded simulator read by the engine through its metrics endpoint finds the
injected incidents and their root causes; the command prints its summary line."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from opsmind.engine.demo import DemoRun, demo_settings
from opsmind.store import Store


def test_fast_forwarded_demo_finds_incidents_and_their_root_causes(tmp_path: Path) -> None:
    # What `opsmind demo` runs (its defaults: seed 3, remediation on, 12 h of warm-up, an incident every 10
    # simulated minutes, an engine cycle a simulated minute) for the 2 minutes the acceptance asks for: 120
    # simulated minutes at the demo's 60x speed. Here nothing is paced: the simulation steps as fast as the
    # engine keeps up (about 40 s).
    settings = demo_settings(f"sqlite:///{tmp_path / 'demo.db'}", port=0, history_s=12 * 3600.0, remediation=True)
    with Store.open(settings.store) as store:
        run = DemoRun(settings, store, seed=3, warmup_s=12 * 3600.0)
        try:
            warm = run.warm_up()
            assert warm.errors == () and warm.series == 40 and warm.trained >= 40 * 12 * 240 - 40  # rates: 1 less
            while run.t < run.start_s + 120 * 60:
                run.step()
            score = run.score()
            records = store.incidents.list("default")
        finally:
            run.close()
    assert len(score.injected) == 12
    # each injected incident is told apart from the one before (an alert that fires again after it resolved is
    # grouped afresh; a detector does not stay alarmed after an incident ended)
    assert score.detected >= 10, score.line()
    assert 2 * score.top1 > len(score.injected), score.line()  # the injected cause ranked first in most cases
    with_rca = [r for r in records if r.rca is not None]
    assert with_rca and all(r.rca["ranking"] and r.rca["ranking"][0]["service"] == r.root_cause for r in with_rca)
    # every incident's evidence says how it was grouped; anomalies behind it carry their own evidence
    assert all(r.evidence and r.evidence[0].startswith("opened by OpsmindAnomaly") for r in records)


def test_demo_command_prints_the_summary_line(tmp_path: Path) -> None:
    env = {**os.environ, "COLUMNS": "120"}
    proc = subprocess.run(
        [sys.executable, "-m", "opsmind.cli.main", "demo", "--duration", "8", "--speed", "120", "--port", "0",
         "--warmup-hours", "2", "--db", str(tmp_path / "demo.db")],
        capture_output=True, text=True, timeout=180, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.strip().splitlines()
    match = re.fullmatch(r"demo summary: injected=(\d+) detected=(\d+) root_cause_top1=(\d+)", lines[-1])
    assert match, proc.stdout[-2000:]
    assert re.fullmatch(r"remediation: runs=\d+ verified=\d+ rolled_back=\d+ blocked=\d+", lines[-2]), lines[-2]
    assert any(line.startswith("remediation playbooks ") and "demo-scale-on-surge" in line for line in lines)
    injected, detected, top1 = (int(g) for g in match.groups())
    assert injected >= 1 and detected <= injected and top1 <= detected
    assert any(line.startswith("dashboard: http://127.0.0.1:") for line in lines), proc.stdout[:1000]
    assert any(" INCIDENT " in line and "root cause" in line for line in lines)
    assert "\x1b[" not in proc.stdout  # plain lines when stdout is not a terminal
    with Store.open(f"sqlite:///{tmp_path / 'demo.db'}") as store:  # --db keeps the records
        assert store.series.list("default")
