"""``opsmind detect``: anomalies in a file or a Prometheus query."""

from __future__ import annotations

import csv
import json
import sys
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
import typer
from rich.console import Console
from rich.table import Table

from opsmind.core import Frame, OpsmindError
from opsmind.detect.pipeline import Detection


class OutputFormat(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"


SEVERITY_STYLE = {"critical": "bold red", "high": "red", "medium": "yellow", "low": "cyan"}


def detect(
    file: Annotated[
        Path | None, typer.Argument(help="CSV or Parquet file: a timestamp column and one or more value columns.")
    ] = None,
    prometheus: Annotated[
        str | None, typer.Option("--prometheus", help="Prometheus base URL, e.g. http://127.0.0.1:9090.")
    ] = None,
    query: Annotated[str | None, typer.Option("--query", help="PromQL range query (with --prometheus).")] = None,
    start: Annotated[
        str, typer.Option("--start", help="Range start: RFC 3339, unix seconds or now-<duration>.")
    ] = "now-24h",
    end: Annotated[str, typer.Option("--end", help="Range end.")] = "now",
    step: Annotated[
        str | None, typer.Option("--step", help="Resolution, e.g. 30s or 5m (default: chosen from the range).")
    ] = None,
    columns: Annotated[
        list[str] | None, typer.Option("--column", "-c", help="Value column to use (repeatable).")
    ] = None,
    output: Annotated[
        OutputFormat, typer.Option("--format", "-f", help="table, or per-row csv/json on stdout.")
    ] = OutputFormat.table,
    threshold: Annotated[
        float, typer.Option("--threshold", min=0.01, max=1.0, help="Alert at this anomaly probability.")
    ] = 0.5,
    suppress: Annotated[
        str, typer.Option("--suppress", help="After an alert, no new alert for this long (e.g. 30m, 8h, 0).")
    ] = "8h",
) -> None:
    """Find anomalies: a table of alerts (time, severity, probability, metrics that drove it), or per-row scores."""
    from opsmind.detect.pipeline import detect_frame
    from opsmind.detect.threshold import Thresholder
    from opsmind.sources.timeparse import parse_duration

    err = Console(stderr=True)
    try:
        frame = _load(file, prometheus, query, start, end, step, columns)
        if len(frame) == 0:
            raise OpsmindError("no data: the query or file returned no rows")
        refractory_s = parse_duration(suppress) if suppress not in ("0", "") else 0.0
        result = detect_frame(frame, thresholder=Thresholder(threshold=threshold, refractory_s=refractory_s))
    except (OpsmindError, OSError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    for note in frame.notes:
        err.print(f"[yellow]note:[/yellow] {frame.name}: {note}")
    times = pd.to_datetime(frame.timestamps)
    multi = frame.ndim > 1
    if output is OutputFormat.table:
        _print_table(result, times, frame.name)
        return
    rows: list[dict[str, Any]] = [
        {
            "timestamp": times[i].isoformat(),
            "score": round(float(result.probability[i]), 6),
            "probability": round(float(result.probability[i]), 6),
            "is_anomaly": bool(result.is_anomaly[i]),
            **({"top_dims": ";".join(result.top_dims[i])} if multi else {}),
        }
        for i in range(len(frame))
    ]
    if output is OutputFormat.json:
        json.dump(rows, sys.stdout)
        sys.stdout.write("\n")
    else:
        writer = csv.DictWriter(sys.stdout, fieldnames=list(rows[0]))
        writer.writeheader()
        for r in rows:
            writer.writerow({**r, "is_anomaly": int(r["is_anomaly"])})


def _load(
    file: Path | None, prometheus: str | None, query: str | None, start: str, end: str, step: str | None,
    columns: list[str] | None,
) -> Frame:
    from opsmind.sources.files import read_frame

    if (file is None) == (prometheus is None):
        raise OpsmindError("give either a FILE or --prometheus URL with --query")
    if file is not None:
        return read_frame(file, columns=columns or None)
    if not query:
        raise OpsmindError("--prometheus needs --query PROMQL")
    from opsmind.sources.prometheus import Prometheus, PrometheusSettings

    now = datetime.now(UTC)
    with Prometheus(PrometheusSettings(url=prometheus)) as prom:
        frame = prom.query_range(query, start, end, step, now=now)
    return frame.select(columns) if columns else frame


def _print_table(result: Detection, times: pd.DatetimeIndex, name: str) -> None:
    console = Console()
    idx = result.anomalies()
    table = Table(title=f"{len(idx)} anomalies in {name or 'input'} ({len(times):,} rows, {result.frame.ndim} series)")
    for col in ("time", "severity", "probability", "top contributing metrics"):
        table.add_column(col, justify="right" if col == "probability" else "left")
    for i in idx:
        sev = result.severity[i] or ""
        table.add_row(str(times[i]), f"[{SEVERITY_STYLE.get(sev, '')}]{sev}[/]", f"{result.probability[i]:.3f}",
                      ", ".join(result.top_dims[i]))
    console.print(table)
    if not idx:
        console.print("No anomalies at this threshold. Detectors need a few hundred rows of history first.")
