"""``opsmind capacity``: per-replica capacity from observed metrics, and what-if latency at a load and replica count."""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from opsmind.core import Frame, OpsmindError

_GUESS = {
    "throughput": ("throughput", "rate_rps", "rps", "rate", "requests", "qps"),
    "replicas": ("replicas", "pods", "instances", "servers"),
    "utilisation": ("utilisation", "utilization", "util", "cpu_busy"),
    "latency": ("latency", "response_time", "duration"),
}


class Stat(StrEnum):
    mean = "mean"
    p95 = "p95"
    p99 = "p99"


class Fmt(StrEnum):
    table = "table"
    json = "json"


def _pick(frame: Frame, role: str, given: str | None, required: bool) -> str | None:
    if given is not None:
        if given not in frame.columns:
            raise typer.BadParameter(f"no column {given!r} (columns: {', '.join(frame.columns)})")
        return given
    for hint in _GUESS[role]:
        for col in frame.columns:
            if hint in col.lower():
                return col
    if required:
        raise typer.BadParameter(
            f"cannot tell which column holds {role} (columns: {', '.join(frame.columns)}); name it with "
            f"--{role}-col")
    return None


def _finite(v: Any) -> Any:
    """JSON has no infinity: an overloaded queue's latency becomes null."""
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {k: _finite(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_finite(x) for x in v]
    return v


def _fmt_s(v: float) -> str:
    if math.isinf(v):
        return "∞"
    return f"{v * 1000:.1f} ms" if v < 10 else f"{v:.1f} s"


def capacity(
    file: Annotated[Path, typer.Argument(help="CSV or Parquet: timestamp, throughput (req/s), replicas, and "
                                               "utilisation (0-1) and/or latency.")],
    load: Annotated[float | None, typer.Option("--load", help="What-if load in req/s (default: the observed "
                                                              "95th percentile).")] = None,
    replicas: Annotated[int | None, typer.Option("--replicas", min=1, help="What-if replicas (default: the last "
                                                                           "observed count).")] = None,
    slo: Annotated[str, typer.Option("--slo", help="Latency SLO, e.g. 250ms or 1s.")] = "250ms",
    quantile: Annotated[float, typer.Option("--quantile", min=0.5, max=0.999, help="SLO quantile.")] = 0.95,
    max_utilisation: Annotated[float, typer.Option("--max-utilisation", min=0.05, max=1.0,
                                                   help="Utilisation cap when counting replicas needed.")] = 0.85,
    mu: Annotated[float | None, typer.Option("--mu", min=1e-9, help="Per-replica capacity in req/s; skips "
                                                                     "estimation from the file.")] = None,
    throughput_col: Annotated[str | None, typer.Option("--throughput-col", help="Throughput column.")] = None,
    replicas_col: Annotated[str | None, typer.Option("--replicas-col", help="Replica count column.")] = None,
    utilisation_col: Annotated[str | None, typer.Option("--utilisation-col", help="Utilisation column.")] = None,
    latency_col: Annotated[str | None, typer.Option("--latency-col", help="Latency column.")] = None,
    latency_stat: Annotated[Stat, typer.Option("--latency-stat", help="What the latency column holds.")] = Stat.mean,
    latency_unit: Annotated[str | None, typer.Option("--latency-unit", help="s or ms (default: ms when the column "
                                                                            "name ends in _ms, else s).")] = None,
    concurrency: Annotated[int, typer.Option("--concurrency", min=1, help="Requests one replica serves at once "
                                             "(worker threads/processes).")] = 1,
    output: Annotated[Fmt, typer.Option("--format", "-f", help="table or json.")] = Fmt.table,
) -> None:
    """Per-replica capacity (M/M/c) from observed metrics, and what-if latency and SLO compliance at a load.

    Also the replicas the SLO needs, and a Universal Scalability Law fit when the data has three or more replica
    counts."""
    from opsmind.capacity import estimate_capacity, fit_usl, what_if
    from opsmind.sources.files import read_frame
    from opsmind.sources.timeparse import parse_duration

    console = Console()
    try:
        slo_s = parse_duration(slo)
        frame = read_frame(file)
        tcol = _pick(frame, "throughput", throughput_col, True)
        rcol = _pick(frame, "replicas", replicas_col, True)
        ucol = _pick(frame, "utilisation", utilisation_col, False)
        lcol = _pick(frame, "latency", latency_col, False)
        assert tcol is not None and rcol is not None
        lam = frame.select([tcol]).values[:, 0]
        reps = frame.select([rcol]).values[:, 0]
        util = frame.select([ucol]).values[:, 0] if ucol else None
        lat = frame.select([lcol]).values[:, 0] if lcol else None
        if lat is not None:
            unit = latency_unit or ("ms" if lcol and lcol.lower().endswith("ms") else "s")
            if unit not in ("s", "ms"):
                raise typer.BadParameter(f"--latency-unit must be s or ms, got {unit!r}")
            lat = lat / 1000.0 if unit == "ms" else lat
        if mu is None:
            if util is None and lat is None:
                raise typer.BadParameter("the file has no utilisation or latency column; name one or give --mu")
            est = estimate_capacity(lam, reps, utilisation=util, latency_s=lat, latency_stat=latency_stat.value,
                                    concurrency=concurrency, where=str(file))
            rate, method = est.mu, f"{est.method}, {est.samples} samples"
            spread: tuple[float, float] | None = est.spread
            notes = list(est.notes)
        else:
            rate, method, spread, notes = mu, "given (--mu)", None, []
        finite = lam[np.isfinite(lam)]
        load_rps = load if load is not None else float(np.percentile(finite, 95)) if len(finite) else 0.0
        fin_r = reps[np.isfinite(reps)]
        n = replicas if replicas is not None else (int(fin_r[-1]) if len(fin_r) else 1)
        w = what_if(load_rps, n, rate, slo_latency_s=slo_s, slo_quantile=quantile, max_utilisation=max_utilisation,
                    concurrency=concurrency)
        usl = None
        if len(np.unique(fin_r)) >= 3:
            # Throughput a replica count sustained: its busiest samples (a lower bound on what it could do).
            counts = np.unique(fin_r)
            peaks = [float(np.percentile(lam[reps == k], 95)) for k in counts]
            usl = fit_usl(counts, peaks, where=str(file))
    except (OpsmindError, OSError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    sweep_from = max(1, (w.replicas_needed or n) - 2)
    sweep = [what_if(load_rps, k, rate, slo_latency_s=slo_s, slo_quantile=quantile, max_utilisation=max_utilisation,
                     concurrency=concurrency) for k in range(sweep_from, sweep_from + 6)]
    if output is Fmt.json:
        out: dict[str, Any] = {
            "capacity": {"mu_rps": rate, "service_time_s": concurrency / rate, "concurrency": concurrency,
                         "method": method, "spread": spread, "notes": notes},
            "what_if": asdict(w),
            "sweep": [asdict(s) for s in sweep],
            "usl": None if usl is None else {**asdict(usl), "peak_replicas": usl.peak_replicas,
                                               "peak_throughput": usl.peak_throughput},
        }
        typer.echo(json.dumps(_finite(out), indent=2))
        return
    console.print(f"[bold]per-replica capacity[/]: {rate:.4g} req/s "
                  f"(service time {_fmt_s(concurrency / rate)}; {method}"
                  + (f"; middle half {spread[0]:.4g}-{spread[1]:.4g}" if spread else "") + ")")
    for note in [*notes, *w.notes]:
        console.print(f"  note: {note}")
    t = Table(title=f"what if: {load_rps:.4g} req/s, SLO p{quantile * 100:g} <= {_fmt_s(slo_s)}")
    for col in ("replicas", "util.", "mean", "p95", "p99", f"> {_fmt_s(slo_s)}", "SLO"):
        t.add_column(col, justify="right")
    for s in sweep:
        style = "bold" if s.replicas == n else None
        t.add_row(str(s.replicas), f"{s.utilisation:.0%}", _fmt_s(s.mean_s), _fmt_s(s.p95_s), _fmt_s(s.p99_s),
                  f"{s.breach_probability:.1%}" if s.breach_probability is not None else "-",
                  "[green]met[/]" if s.compliant else "[red]missed[/]", style=style)
    console.print(t)
    verdict = "meets" if w.compliant else "misses"
    needed = w.replicas_needed if w.replicas_needed else "none meets it"
    console.print(f"{n} replicas at {load_rps:.4g} req/s {verdict} the SLO (p95 {_fmt_s(w.p95_s)}, utilisation "
                  f"{w.utilisation:.0%}); replicas needed: {needed}"
                  + (f" (with utilisation <= {max_utilisation:.0%})" if max_utilisation < 1 else ""))
    if usl is not None:
        peak = ("no peak in sight" if usl.peak_replicas > 1e4
                else f"peak {usl.peak_throughput:.4g} req/s at {usl.peak_replicas:.1f} replicas")
        console.print(f"[bold]scalability (USL)[/]: contention sigma={usl.sigma:.4f}, coherency kappa={usl.kappa:.2e}, "
                      f"one replica {usl.lam:.4g} req/s, {peak}; R^2 {usl.r2:.2f} over {usl.n_points} replica counts")
        for note in usl.notes:
            console.print(f"  note: {note}")
