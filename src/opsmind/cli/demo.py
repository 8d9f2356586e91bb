"""``opsmind demo``: the whole loop on one machine with nothing installed: a simulated 8-service shop exposing
Prometheus metrics, the engine reading them on SQLite, incidents injected every few minutes, playbooks that
scale, restart and roll back simulated services (verified on the scraped metrics), the API and the dashboard, and
a live summary. The last line is always ``demo summary: injected=N detected=M root_cause_top1=K``; the line before
it counts remediation runs."""

from __future__ import annotations

import tempfile
import threading
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.live import Live

from opsmind.cli.demo_monitor import DemoMonitor, clock
from opsmind.core import OpsmindError

__all__ = ["demo"]


def _start_api(run: Any, host: str, port: int) -> tuple[Any, threading.Thread, str] | None:
    """The API and dashboard in a thread (``None`` with a note when the API cannot start)."""
    import uvicorn

    from opsmind.api import create_app

    app = create_app(run.settings, store=run.store, telemetry=run.engine.telemetry, engine=run.engine,
                     remediator=run.engine.remediator, clock=lambda: run.t)  # "the last hour" is simulated time
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, name="opsmind-api", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30.0
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    if not server.started:
        return None
    bound = server.servers[0].sockets[0].getsockname()[1]
    return server, thread, f"http://{host}:{bound}/"


def demo(
    speed: Annotated[float, typer.Option(min=0.1, help="Simulated seconds per wall-clock second.")] = 60.0,
    duration: Annotated[float | None, typer.Option(min=0.0, help="Stop after this many wall-clock seconds.")] = None,
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port of the API and dashboard (0: a free one).")] = 8080,
    db: Annotated[Path | None, typer.Option(help="SQLite file to keep the records in (default: a temporary "
                                            "directory, removed at the end).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the simulation and of the incident schedule (the default's first "
                                      "incidents: a traffic surge, a latency injection, a memory leak).")] = 3,
    every: Annotated[float, typer.Option(min=60.0, help="Simulated seconds between incident starts.")] = 600.0,
    incident_minutes: Annotated[float, typer.Option(min=0.5, help="How long each incident lasts, simulated "
                                                    "minutes.")] = 5.0,
    warmup_hours: Annotated[float, typer.Option(min=0.5, help="Simulated history the detectors learn before "
                                                "going live.")] = 12.0,
    step: Annotated[float, typer.Option(min=1.0, help="Simulation step and scrape interval, seconds.")] = 15.0,
    cycle: Annotated[float, typer.Option(min=1.0, help="Engine cycle, simulated seconds.")] = 60.0,
    no_api: Annotated[bool, typer.Option("--no-api", help="Do not serve the API and dashboard.")] = False,
    no_remediation: Annotated[bool, typer.Option("--no-remediation", help="Detect only: run no playbook.")] = False,
) -> None:
    """Simulate a shop, inject incidents with a known root cause, and watch opsmind detect them and find the cause."""
    from opsmind.engine.demo import DemoRun, demo_settings
    from opsmind.store import Store
    from opsmind.telemetry import Telemetry

    tmp = tempfile.TemporaryDirectory(prefix="opsmind-demo-") if db is None else None
    path = Path(tmp.name) / "opsmind.db" if tmp is not None else db
    assert path is not None
    run = None
    api = None
    try:
        settings = demo_settings(f"sqlite:///{path.resolve()}", port=port, cycle_s=cycle,
                                 history_s=warmup_hours * 3600.0, remediation=not no_remediation)
        store = Store.open(settings.store)
        run = DemoRun(settings, store, seed=seed, step_s=step, every_s=every, incident_s=incident_minutes * 60.0,
                      warmup_s=warmup_hours * 3600.0, telemetry=Telemetry())
        typer.echo(f"opsmind demo: simulated metrics at {run.url}; records in {path}")
        if not no_api:
            api = _start_api(run, settings.api.host, port)
            if api is None:
                typer.echo(f"note: the API could not start on port {port} (in use?); running without it")
            else:
                typer.echo(f"dashboard: {api[2]}  (API: {api[2]}api/v1/, docs: {api[2]}docs)")
        if run.engine.remediator is not None:
            names = ", ".join(pb.name for pb in run.engine.remediator.playbooks)
            typer.echo(f"remediation playbooks (executed in the simulation, verified, rolled back on failure): {names}")
        typer.echo(f"learning {warmup_hours:g} h of simulated history ({len(settings.services)} services) ...")
        run.warm_up()
        typer.echo(f"live from {clock(run.t)} UTC at {speed:g}x; an incident every {every / 60:g} simulated min")
        monitor = DemoMonitor(run, api[2] if api is not None else None)
        _live(run, monitor, speed, duration)
    except OpsmindError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    finally:
        if api is not None:
            api[0].should_exit = True
            api[1].join(timeout=10)
        if run is not None:
            score = run.score()
            for r in score.injected:
                found = ("not detected" if not r.detected else
                         f"detected as {r.key}, root cause {r.root_cause or 'not found yet'}"
                         + (f" (injected cause ranked {r.rank})" if r.rank else ""))
                typer.echo(f"{clock(r.incident.start_s)} {r.incident.kind} on {r.incident.target}: {found}")
            run.close()  # a verification still waiting fails ("the simulation stopped") and is rolled back
            remediation = run.remediation() if run.engine.remediator is not None else None
            run.store.close()
            if remediation is not None:
                typer.echo(remediation.line())
            typer.echo(score.line())
        if tmp is not None:
            tmp.cleanup()


def _live(run: Any, monitor: DemoMonitor, speed: float, duration: float | None) -> None:
    """Step the simulation paced to ``speed`` until ``duration`` (or Ctrl-C); lines or a Rich live view."""
    console = Console()
    live = Live(console=console, refresh_per_second=2, transient=False) if console.is_terminal else None
    wall0 = time.monotonic()
    sim0 = run.t
    try:
        if live is not None:
            live.start()
        while duration is None or time.monotonic() - wall0 < duration:
            started, report = run.step()
            lines = [monitor.injected(inc) for inc in started]
            if report is not None:
                lines += monitor.poll()
            if live is None:
                for line in lines:
                    typer.echo(line)
            elif lines or report is not None:
                live.update(monitor.view())
            delay = wall0 + (run.t - sim0) / speed - time.monotonic()
            if delay > 0:
                left = None if duration is None else max(0.0, wall0 + duration - time.monotonic())
                time.sleep(delay if left is None else min(delay, left))
    except KeyboardInterrupt:
        pass
    finally:
        if live is not None:
            live.stop()
