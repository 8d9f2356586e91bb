"""``opsmind demo``: the simulator with injected incidents, and live anomaly detection on every service."""

from __future__ import annotations

import time
from collections import deque
from datetime import UTC, datetime

import numpy as np
import typer
from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from opsmind.cli.demo_monitor import Detection, IncidentEvent, Monitor
from opsmind.sim import DEFAULT_START_S, Snapshot, System, default_topology, schedule, serve_metrics

__all__ = ["demo"]

_LIVE_START_S = DEFAULT_START_S + 15 * 3600.0  # 15:00 UTC, the daily peak: traffic then eases off
_SEVERITY_STYLE = {"critical": "bold red", "high": "red", "medium": "yellow", "low": "cyan"}


def _clock(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%H:%M:%S")


def _incident_line(ev: IncidentEvent) -> str:
    inc = ev.incident
    if ev.started:
        return (f"{_clock(ev.t)} INCIDENT  {inc.kind} on {inc.target} (magnitude {inc.size:g}, "
                f"{inc.duration_s / 60:g} min): root cause {inc.target}")
    return f"{_clock(ev.t)} RESOLVED  {inc.kind} on {inc.target}"


def _detection_line(d: Detection) -> str:
    return (f"{_clock(d.t)} DETECTED  {d.service} {d.metric}={d.value:.4g} "
            f"severity={d.severity} p={d.probability:.2f}")


def _table(snap: Snapshot, monitor: Monitor) -> Table:
    table = Table(title=f"opsmind demo  ·  simulated time {_clock(snap.t)} UTC", expand=True)
    for col in ("service", "req/s", "p95 ms", "errors %", "CPU cores", "memory MB", "health", "incident"):
        table.add_column(col, justify="left" if col in ("service", "health", "incident") else "right")
    for i, name in enumerate(snap.names):
        p = monitor.health(name)
        health = Text("● alert", "bold red") if p >= 0.8 else Text("● warn", "yellow") if p >= 0.5 else Text(
            "● ok", "green")
        active = [inc.kind for inc in monitor.system.incidents if inc.target == name and inc.active(snap.t)]
        table.add_row(name, f"{snap.rate_rps[i]:.0f}", f"{snap.latency_p95_s[i] * 1e3:.0f}",
                      f"{snap.error_ratio[i] * 100:.2f}", f"{snap.cpu_cores[i]:.2f}",
                      f"{snap.memory_bytes[i] / 1e6:.0f}", health, Text(", ".join(active), "magenta"))
    return table


def _incidents_panel(monitor: Monitor, now: float) -> Panel:
    lines = []
    for inc in monitor.injected(now)[-6:]:
        first = monitor.detected.get(inc)
        state = "active" if inc.active(now) else "resolved"
        found = Text(f"detected after {first - inc.start_s:.0f} s", "green") if first is not None else Text(
            "not detected yet" if inc.active(now) else "missed", "yellow" if inc.active(now) else "red")
        lines.append(Text.assemble(f"{_clock(inc.start_s)} {inc.kind} on ", (inc.target, "bold"),
                                   f" (root cause, {state}): ", found))
    return Panel(Group(*lines) if lines else Text("first incident at 2 min"), title="injected incidents")


def _grouped(found: list[Detection]) -> list[Text]:
    """One line per service and step: the metrics that alerted, with severity and probability."""
    out = []
    for service in dict.fromkeys(d.service for d in found):
        mine = [d for d in found if d.service == service]
        worst = max(mine, key=lambda d: d.probability)
        parts = ", ".join(f"{d.metric} {d.severity} p={d.probability:.2f}" for d in mine)
        out.append(Text(f"{_clock(worst.t)} {service}: {parts}", _SEVERITY_STYLE.get(worst.severity, "")))
    return out


def _summary(monitor: Monitor, now: float) -> list[str]:
    injected = monitor.injected(now)
    lines = []
    for inc in injected:
        first = monitor.detected.get(inc)
        found = f"detected after {first - inc.start_s:.0f} s" if first is not None else "not detected"
        lines.append(f"{_clock(inc.start_s)} {inc.kind} on {inc.target}: {found}")
    lines.append(f"demo summary: injected={len(injected)} detected={sum(i in monitor.detected for i in injected)}")
    return lines


def demo(
    speed: float = typer.Option(60.0, min=0.1, help="Simulated seconds per wall-clock second."),
    duration: float | None = typer.Option(None, min=0.0, help="Stop after this many wall-clock seconds."),
    seed: int = typer.Option(0, help="Seed of the simulation and of the incident schedule."),
    step: float = typer.Option(15.0, min=1.0, help="Simulation step (and scrape interval), seconds."),
    every: float = typer.Option(600.0, min=60.0, help="Simulated seconds between incident starts."),
    incident_minutes: float = typer.Option(5.0, min=0.5, help="How long each incident lasts, simulated minutes."),
    warmup_hours: float = typer.Option(12.0, min=0.5, help="Simulated history the detectors learn before going live."),
    metrics_port: int | None = typer.Option(None, help="Also serve the simulated metrics at 127.0.0.1:PORT/metrics."),
) -> None:
    """Simulate an 8-service shop, inject incidents with a known root cause and watch them being detected."""
    incident_s = incident_minutes * 60.0
    topo = default_topology()
    incidents = schedule(topo, _LIVE_START_S, _LIVE_START_S + 86400.0, every_s=max(every, incident_s),
                         duration_s=incident_s, first_s=120.0, seed=seed)
    monitor = Monitor(System(topo, incidents=incidents, seed=seed))
    console = Console()
    n_warm = int(warmup_hours * 3600.0 / step)
    typer.echo(f"opsmind demo: learning {warmup_hours:g} h of simulated history "
               f"({len(topo.names)} services x {len(monitor.metrics)} metrics) ...")
    t, server = _LIVE_START_S, None
    try:
        monitor.warm_up(_LIVE_START_S - step * np.arange(n_warm - 1, -1, -1, dtype=np.float64), step)
        server = serve_metrics(monitor.system, port=metrics_port) if metrics_port is not None else None
        if server is not None:
            typer.echo(f"serving simulated metrics at {server.url}")
        typer.echo(f"live from {_clock(_LIVE_START_S)} UTC at {speed:g}x; an incident every {every / 60:g} min")
        t = _run(monitor, console, speed, duration, step)
    except KeyboardInterrupt:  # during warm-up: nothing was injected yet
        pass
    finally:
        if server is not None:
            server.close()
    for line in _summary(monitor, t):
        typer.echo(line)


def _run(monitor: Monitor, console: Console, speed: float, duration: float | None, step: float) -> float:
    """The live loop, paced to ``speed``; returns the simulated time it stopped at (Ctrl-C stops it cleanly)."""
    t = _LIVE_START_S
    wall0 = time.monotonic()
    log: deque[Text] = deque(maxlen=12)
    live = Live(console=console, refresh_per_second=4, transient=False) if console.is_terminal else None
    try:
        if live is not None:
            live.start()
        while duration is None or time.monotonic() - wall0 < duration:
            t += step
            snap, events, found = monitor.step(t, step)
            if live is None:
                for line in [_incident_line(ev) for ev in events] + [_detection_line(d) for d in found]:
                    typer.echo(line)
            else:
                log.extend(_grouped(found))
                live.update(Group(_table(snap, monitor), _incidents_panel(monitor, t),
                                  Panel(Group(*log), title="detections (service: metric severity probability)")))
            delay = wall0 + (t - _LIVE_START_S) / speed - time.monotonic()
            if delay > 0:
                time.sleep(delay if duration is None else min(delay, max(0.0, wall0 + duration - time.monotonic())))
    except KeyboardInterrupt:
        pass
    finally:
        if live is not None:
            live.stop()
    return t
