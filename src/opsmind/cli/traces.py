"""``opsmind traces ...``: critical paths and workflow advice from trace files."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from opsmind.core import OpsmindError

traces_app = typer.Typer(help="Analyse traces (Jaeger JSON, OTLP JSON, CSV): critical path and advice.",
                         no_args_is_help=True)


class OutputFormat(StrEnum):
    table = "table"
    json = "json"


class InputFormat(StrEnum):
    auto = "auto"
    jaeger = "jaeger"
    otlp = "otlp"
    csv = "csv"


@traces_app.command("analyze")
def analyze(
    file: Annotated[Path, typer.Argument(help="Trace file (Jaeger JSON, OTLP JSON, CSV; gzip ok) or a folder.")],
    output: Annotated[OutputFormat, typer.Option("--format", "-f", help="table, or json on stdout.")] = (
        OutputFormat.table),
    trace_id: Annotated[
        str | None, typer.Option("--trace-id", help="Show this trace's critical path (default: the slowest trace).")
    ] = None,
    input_format: Annotated[InputFormat, typer.Option("--input-format", help="File format (default: detected).")] = (
        InputFormat.auto),
    top: Annotated[int, typer.Option("--top", min=1, help="Rows of the per-operation and per-service tables.")] = 10,
) -> None:
    """Critical path of the slowest trace (or --trace-id), time on it per operation and service, and advice.

    The advice (parallelisable calls, timeouts, retry budgets, caching) comes with its estimated gain and example
    trace ids."""
    from opsmind.sources.traces import read_traces
    from opsmind.traces.report import summarize

    try:
        with Console(stderr=True).status("reading and analysing traces", spinner="dots"):
            traces, warnings = read_traces(file, input_format.value)
            report = summarize(traces, trace_id=trace_id, warnings=warnings)
    except (OpsmindError, OSError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    if output is OutputFormat.json:
        typer.echo(json.dumps(report.to_json(), indent=2))
        return
    console = Console()
    for w in report.warnings:
        console.print(f"[yellow]warning:[/yellow] {escape(w)}")
    cp = report.critical_path
    t = Table(title=f"critical path of trace {escape(report.trace_id)} ({cp.duration_us / 1000:.3f} ms; "
                    f"{report.traces} traces, {report.spans} spans read)")
    for col in ("start ms", "duration ms", "exclusive ms", "span"):
        t.add_column(col, justify="left" if col == "span" else "right")
    for s in cp.segments:
        t.add_row(f"{(s.start_us - cp.root.start_us) / 1000:.3f}", f"{(s.end_us - s.start_us) / 1000:.3f}",
                  f"{s.exclusive_us / 1000:.3f}",
                  "  " * s.depth + escape(s.name) + (" [red](error)[/red]" if s.span.error else ""))
    console.print(t)
    for w in cp.warnings:
        console.print(f"[yellow]note:[/yellow] {escape(w)}")
    for title, rows in (("critical-path time per operation", report.by_operation),
                        ("critical-path time per service", report.by_service)):
        tt = Table(title=f"{title} (all traces)")
        for col in ("", "total ms", "share", "traces", "example traces"):
            tt.add_column(col, justify="right" if col in ("total ms", "share", "traces") else "left")
        for r in rows[:top]:
            tt.add_row(escape(r.key), f"{r.total_us / 1000:.3f}", f"{r.share:.1%}", str(r.traces),
                       ", ".join(r.example_trace_ids))
        console.print(tt)
    at = Table(title="advice")
    for col in ("kind", "gain ms/trace", "total ms", "traces", "advice", "examples"):
        at.add_column(col, justify="right" if col in ("gain ms/trace", "total ms", "traces") else "left")
    for a in report.advice:
        at.add_row(a.kind, f"{a.gain_ms_per_trace:.3g}", f"{a.gain_ms_total:.4g}", str(a.traces_affected),
                   escape(a.summary),
                   ", ".join(a.example_trace_ids))
    console.print(at)
