"""What ``opsmind demo`` shows while it runs: events read back from the store (incidents opened, root causes
found, remediation runs) next to the injected incidents, as plain lines or a Rich live view."""

from __future__ import annotations

from collections import deque
from datetime import UTC, datetime

from rich.console import Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from opsmind.engine.demo import DemoRun
from opsmind.remediate import RunRecord
from opsmind.sim import Incident
from opsmind.store import IncidentRecord

__all__ = ["DemoMonitor", "clock", "remediation_line"]


def clock(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%H:%M:%S")


def remediation_line(run: RunRecord) -> str:
    """One finished remediation run: playbook, target, result, what the actions did, verification, rollback."""
    when = run.finished_at if run.finished_at is not None else run.updated_at
    targets = ", ".join(run.targets) or "-"
    text = f"{clock(when)} REMEDIATION {run.playbook} on {targets}: {run.status}"
    if run.started_at is None:  # blocked or dry run: why
        return f"{text} ({run.reason})"
    acts = "; ".join(str(o.get("message") or o.get("kind")) for o in run.outcomes)
    if acts:
        text += f" ({acts})"
    if run.verification is not None:
        v = run.verification
        text += f"; verification {'passed' if v.get('ok') else 'failed'}: {v.get('detail')}"
    if run.rollbacks:
        text += "; rollback: " + "; ".join(f"{'ok' if r.get('ok') else 'FAILED'} {r.get('message', '')}".strip()
                                           for r in run.rollbacks)
    elif run.status == "rolled_back":
        text += "; rollback: nothing to undo"
    elif run.status != "succeeded":
        text += f"; {run.reason}" if run.verification is None else "; no rollback (the playbook has none)"
    return text


class DemoMonitor:
    """Turns the demo's progress into lines: injected incidents, incidents opsmind opened, root causes."""

    def __init__(self, run: DemoRun, url: str | None) -> None:
        self.run = run
        self.url = url
        self.lines: deque[Text] = deque(maxlen=14)
        self._seen: set[str] = set()
        self._rca: set[str] = set()
        self._runs: set[str] = set()

    def injected(self, inc: Incident) -> str:
        line = (f"{clock(inc.start_s)} INCIDENT  {inc.kind} on {inc.target} (magnitude {inc.size:g}, "
                f"{inc.duration_s / 60:g} min): root cause {inc.target}")
        self.lines.append(Text(line, "magenta"))
        return line

    def poll(self) -> list[str]:
        """New events in the store since the last poll, as lines."""
        out: list[str] = []
        records = self.run.store.incidents.list(self.run.settings.tenant, limit=50)
        for rec in sorted(records, key=lambda r: r.started_at):
            if rec.key not in self._seen:
                self._seen.add(rec.key)
                out.append(self._line(f"{clock(rec.started_at)} DETECTED  {rec.priority} incident {rec.key} on "
                                      f"{', '.join(rec.services)}", "yellow"))
            if rec.rca is not None and rec.key not in self._rca:
                self._rca.add(rec.key)
                out.append(self._line(self._rca_line(rec), "green" if self._right(rec) else "red"))
        finished = [r for r in self.run.remediation().runs if r.run_id not in self._runs
                    and r.status not in ("planned", "running", "pending_approval", "approved")]
        for run in sorted(finished, key=lambda r: (r.finished_at or r.updated_at, r.created_at)):
            self._runs.add(run.run_id)
            style = {"succeeded": "green", "rolled_back": "cyan", "blocked": "dim"}.get(run.status, "red")
            out.append(self._line(remediation_line(run), style))
        return out

    def _line(self, text: str, style: str) -> str:
        self.lines.append(Text(text, style))
        return text

    def _right(self, rec: IncidentRecord) -> bool:
        truth = self._truth(rec)
        return truth is not None and rec.root_cause == truth.target

    def _truth(self, rec: IncidentRecord) -> Incident | None:
        for inc in self.run.injected():
            if inc.start_s - 60.0 <= rec.started_at < inc.end_s:
                return inc
        return None

    def _rca_line(self, rec: IncidentRecord) -> str:
        truth = self._truth(rec)
        ranking = [c.get("service") for c in (rec.rca or {}).get("ranking", [])] if isinstance(rec.rca, dict) else []
        injected = f"; injected {truth.kind} on {truth.target}" if truth is not None else "; no injected incident then"
        return (f"{clock(self.run.t)} ROOT CAUSE {rec.key}: {rec.root_cause or 'unknown'} "
                f"(ranking {', '.join(str(s) for s in ranking[:3])}){injected}")

    def view(self) -> Group:
        """The live view: services with their latest anomaly probability, then recent events."""
        run = self.run
        snap = run.system.snapshot
        probs: dict[str, float] = {}
        for info in run.engine._series.values():
            probs[info.service] = max(probs.get(info.service, 0.0), info.probability)
        title = f"opsmind demo  ·  simulated {clock(run.t)} UTC" + (f"  ·  dashboard {self.url}" if self.url else "")
        table = Table(title=title, expand=True)
        for col in ("service", "replicas", "req/s", "p95 ms", "errors %", "CPU", "memory MB", "anomaly", "injected"):
            table.add_column(col, justify="left" if col in ("service", "anomaly", "injected") else "right")
        if snap is not None:
            for i, name in enumerate(snap.names):
                p = probs.get(name, 0.0)
                health = Text(f"● {p:.2f}", "bold red" if p >= 0.9 else "yellow" if p >= 0.5 else "green")
                active = [inc.kind for inc in run.system.incidents if inc.target == name and inc.active(run.t)]
                table.add_row(name, str(run.system.replicas(name)), f"{snap.rate_rps[i]:.0f}",
                              f"{snap.latency_p95_s[i] * 1e3:.0f}",
                              f"{snap.error_ratio[i] * 100:.2f}", f"{snap.cpu_cores[i]:.2f}",
                              f"{snap.memory_bytes[i] / 1e6:.0f}", health, Text(", ".join(active), "magenta"))
        title = run.score().line()
        if run.engine.remediator is not None:
            title += "  ·  " + run.remediation().line()
        return Group(table, Panel(Group(*self.lines) if self.lines else Text("waiting for the first incident"),
                                  title=title))
