"""``opsmind forecast``: a forecast with 80 % and 95 % intervals for a file or a Prometheus query."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from opsmind.core import Frame, OpsmindError


class OutputFormat(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"


def forecast(
    file: Annotated[
        Path | None, typer.Argument(help="CSV or Parquet file: a timestamp column and a value column.")
    ] = None,
    prometheus: Annotated[
        str | None, typer.Option("--prometheus", help="Prometheus base URL, e.g. http://127.0.0.1:9090.")
    ] = None,
    query: Annotated[str | None, typer.Option("--query", help="PromQL range query (with --prometheus).")] = None,
    start: Annotated[
        str, typer.Option("--start", help="Range start: RFC 3339, unix seconds or now-<duration>.")
    ] = "now-7d",
    end: Annotated[str, typer.Option("--end", help="Range end.")] = "now",
    horizon: Annotated[str, typer.Option("--horizon", help="How far ahead, e.g. 30m, 2h, 1d.")] = "2h",
    step: Annotated[
        str | None,
        typer.Option("--step", help="Resample the history to this step first, e.g. 5m (default: the data's step; "
                     "for Prometheus the query step)."),
    ] = None,
    column: Annotated[
        str | None, typer.Option("--column", "-c", help="Value column to forecast (needed when there are several).")
    ] = None,
    method: Annotated[
        str, typer.Option("--method", help="Forecaster: opsmind (default), seasonal_naive, ets, mstl, theta.")
    ] = "opsmind",
    output: Annotated[
        OutputFormat, typer.Option("--format", "-f", help="table, or csv/json on stdout.")
    ] = OutputFormat.table,
    plot: Annotated[
        Path | None, typer.Option("--plot", help="Write a PNG of the history, the forecast and its intervals.")
    ] = None,
) -> None:
    """Forecast one series: mean and 80/95 % prediction intervals per future step, and why (the notes)."""
    from opsmind.forecast.api import forecast_frame
    from opsmind.sources.timeparse import parse_duration

    err = Console(stderr=True)
    try:
        horizon_s = parse_duration(horizon)
        step_s = parse_duration(step) if step else None
        frame = _load(file, prometheus, query, start, end, step)
        fc, history = forecast_frame(frame, horizon_s, column=column, step_s=step_s if file else None,
                                     method=method)
        if plot is not None:
            from opsmind.forecast.plot import forecast_figure

            forecast_figure(history, fc, title=f"{history.name or 'series'} {history.columns[0]}").savefig(plot)
    except (OpsmindError, OSError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    df = fc.to_pandas()
    console = Console()
    if output is OutputFormat.table:
        table = Table(title=f"{fc.method} forecast of {history.columns[0]}: {len(fc)} steps")
        for col in df.columns:
            table.add_column(col, justify="left" if col == "timestamp" else "right")
        for row in df.itertuples(index=False):
            table.add_row(str(row[0]), *[f"{v:.6g}" for v in row[1:]])
        console.print(table)
        for note in fc.notes:
            console.print(f"[yellow]note:[/yellow] {note}")
    else:
        for note in fc.notes:
            err.print(f"note: {note}")
        if output is OutputFormat.csv:
            df.to_csv(sys.stdout, index=False, float_format="%.6g")
        else:
            df["timestamp"] = df["timestamp"].map(lambda t: t.isoformat())
            json.dump({"method": fc.method, "notes": list(fc.notes), "forecast": df.to_dict(orient="records")},
                      sys.stdout)
            sys.stdout.write("\n")
    if plot is not None:
        (console if output is OutputFormat.table else err).print(f"wrote {plot}")


def _load(file: Path | None, prometheus: str | None, query: str | None, start: str, end: str,
          step: str | None) -> Frame:
    from opsmind.sources.files import read_frame

    if (file is None) == (prometheus is None):
        raise OpsmindError("give either a FILE or --prometheus URL with --query")
    if file is not None:
        return read_frame(file)
    if not query:
        raise OpsmindError("--prometheus needs --query PROMQL")
    from opsmind.sources.prometheus import Prometheus, PrometheusSettings

    with Prometheus(PrometheusSettings(url=prometheus)) as prom:
        return prom.query_range(query, start, end, step, now=datetime.now(UTC))
