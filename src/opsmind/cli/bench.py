"""``opsmind bench ...``: benchmark commands on public data (see docs/benchmarks.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.progress import Progress

from opsmind.bench.service import service as service_bench

bench_app = typer.Typer(
    help="Run a benchmark on public data and print opsmind's figures beside peers and published results.",
    no_args_is_help=True,
)


DataOption = Annotated[
    Path | None,
    typer.Option("--data", help="Benchmark folder in the layout of ../shared/benchmarks/NAME (default: that folder)."),
]
JsonOption = Annotated[
    Path | None, typer.Option("--json", help="Write the results as JSON (the benchmark output contract) here.")
]
DocsOption = Annotated[
    Path | None, typer.Option("--docs", help="Markdown file whose section for this benchmark is replaced.")
]
WorkersOption = Annotated[int, typer.Option("--workers", min=1, help="Worker processes.")]
DOCS_DEFAULT = Path("docs/benchmarks.md")


def _fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


@bench_app.command("nab")
def nab(
    data: DataOption = None,
    results_dir: Annotated[
        Path | None,
        typer.Option("--results-dir", help="Write per-file results in NAB's layout: <category>/opsmind_<file>.csv."),
    ] = None,
    json_path: JsonOption = None,
    docs: DocsOption = DOCS_DEFAULT,
    workers: WorkersOption = 2,
) -> None:
    """Numenta Anomaly Benchmark: opsmind's default detector on all 58 files, three NAB profiles."""
    from opsmind.bench.nab import run_nab
    from opsmind.bench.report import default_data_dir, publish
    from opsmind.core import OpsmindError

    folder = data or default_data_dir("nab")
    console = Console()
    try:
        with Progress(console=console, transient=True) as bar:
            task = bar.add_task("NAB: detecting", total=58)
            result, _ = run_nab(folder, results_dir=results_dir, workers=workers,
                                progress=lambda _name: bar.advance(task))
    except (OpsmindError, OSError) as exc:
        _fail(str(exc))
    result.command = "opsmind bench nab" + (f" --data {data}" if data else "")
    publish(result, json_path=json_path, docs_path=docs, console=console)


@bench_app.command("smd")
def smd(
    data: DataOption = None,
    json_path: JsonOption = None,
    results_dir: Annotated[
        Path | None,
        typer.Option("--results-dir", help="Write opsmind's per-row output per machine: <machine>.csv with "
                     "columns score,is_anomaly,top_dims (1-based dimensions, most deviant first)."),
    ] = None,
    docs: DocsOption = DOCS_DEFAULT,
    workers: WorkersOption = 2,
    machine: Annotated[
        list[str] | None,
        typer.Option("--machine", help="Only this machine (repeatable), e.g. machine-1-2; default: every machine."),
    ] = None,
) -> None:
    """Server Machine Dataset: fit on train/, score test/; best F1, point-adjusted F1, HitRate@100%/150%."""
    from opsmind.bench.report import default_data_dir, publish
    from opsmind.bench.smd import list_machines, run_smd
    from opsmind.core import OpsmindError

    folder = data or default_data_dir("smd")
    console = Console()
    try:
        total = len(machine) if machine else len(list_machines(folder))
        with Progress(console=console, transient=True) as bar:
            task = bar.add_task("SMD: machines", total=total)
            result = run_smd(folder, machine, workers=workers, results_dir=results_dir,
                             progress=lambda _name: bar.advance(task))
    except (OpsmindError, OSError) as exc:
        _fail(str(exc))
    result.command = "opsmind bench smd" + (f" --data {data}" if data else "")
    publish(result, json_path=json_path, docs_path=docs, console=console, summary_dataset="all")


@bench_app.command("critical-path")
def critical_path(data: DataOption = None, json_path: JsonOption = None, docs: DocsOption = DOCS_DEFAULT) -> None:
    """CRISP's 33 test traces: opsmind's critical path and error-path statistics against CRISP's expected results."""
    from opsmind.bench.critical_path import list_cases, run_critical_path
    from opsmind.bench.report import default_data_dir, publish
    from opsmind.core import OpsmindError

    folder = data or default_data_dir("rca/crisp-critical-path-cases")
    console = Console()
    try:
        with Progress(console=console, transient=True) as bar:
            task = bar.add_task("critical path: cases", total=len(list_cases(folder)))
            result, _ = run_critical_path(folder, progress=lambda _name: bar.advance(task))
    except (OpsmindError, OSError) as exc:
        _fail(str(exc))
    result.command = "opsmind bench critical-path" + (f" --data {data}" if data else "")
    publish(result, json_path=json_path, docs_path=docs, console=console)


@bench_app.command("forecast")
def forecast(
    data: DataOption = None,
    nab_data: Annotated[
        Path | None, typer.Option("--nab-data", help="NAB folder (holds data/realAWSCloudwatch, data/realKnownCause).")
    ] = None,
    series: Annotated[
        list[Path] | None,
        typer.Option("--series", help="Evaluate on this CSV/Parquet file (timestamp,value; repeatable) instead."),
    ] = None,
    json_path: JsonOption = None,
    docs: DocsOption = DOCS_DEFAULT,
    workers: WorkersOption = 2,
) -> None:
    """Rolling-origin forecast accuracy (MASE, sMAPE, 95 % coverage, time) at 30 min, 2 h and 24 h vs statsforecast."""
    from opsmind.bench.forecast import load_default_series, load_series_files, run_forecast_bench
    from opsmind.bench.report import default_data_dir, publish
    from opsmind.core import OpsmindError

    console = Console()
    try:
        if series:
            items, where = load_series_files(series), ", ".join(str(s) for s in series)
        else:
            traces, nab = data or default_data_dir("traces"), nab_data or default_data_dir("nab")
            items, where = load_default_series(traces, nab), f"{traces}, {nab}"
        with Progress(console=console, transient=True) as bar:
            task = bar.add_task("forecast: series", total=len(items))
            result = run_forecast_bench(items, data=where, workers=workers, progress=lambda _name: bar.advance(task))
    except (OpsmindError, OSError) as exc:
        _fail(str(exc))
    args = "".join(f" --series {s}" for s in series or []) + (f" --data {data}" if data else "")
    result.command = "opsmind bench forecast" + args + (f" --nab-data {nab_data}" if nab_data else "")
    publish(result, json_path=json_path, docs_path=docs, console=console, summary_dataset="all")


@bench_app.command("rightsize")
def rightsize(
    workload: Annotated[
        list[Path] | None,
        typer.Option("--workload", help="Replay this CSV (timestamp, CPU[, memory bytes]; repeatable) instead of "
                     "the default traces."),
    ] = None,
    data: Annotated[
        Path | None, typer.Option("--data", help="Traces folder holding crane_dsp_cpu/ (default: the shared one).")
    ] = None,
    nab_data: Annotated[
        Path | None, typer.Option("--nab-data", help="NAB folder holding data/realAWSCloudwatch/.")
    ] = None,
    train_fraction: Annotated[
        float, typer.Option("--train-fraction", min=0.05, max=0.95, help="Share of each trace's span to learn from.")
    ] = 0.5,
    unit: Annotated[
        str, typer.Option("--unit", help="CPU values: peak (scale each trace to a 1-core history peak), cores, "
                          "millicores or percent.")
    ] = "peak",
    json_path: JsonOption = None,
    docs: DocsOption = DOCS_DEFAULT,
) -> None:
    """Rightsizing: recommend from the first half of CPU traces, replay the rest; opsmind vs VPA-style vs KRR."""
    from opsmind.bench.report import default_data_dir, publish
    from opsmind.bench.rightsize import default_workloads, run_rightsize
    from opsmind.core import OpsmindError

    console = Console()
    try:
        if workload:
            files, where = list(workload), ", ".join(str(w) for w in workload)
        else:
            traces, nab = data or default_data_dir("traces"), nab_data or default_data_dir("nab")
            files, where = default_workloads(traces, nab), f"{traces}, {nab}"
        with Progress(console=console, transient=True) as bar:
            task = bar.add_task("rightsize: traces", total=len(files))
            result = run_rightsize(files, data_label=where, train_fraction=train_fraction, unit=unit,
                                   progress=lambda _name: bar.advance(task))
    except (OpsmindError, OSError) as exc:
        _fail(str(exc))
    args = "".join(f" --workload {w}" for w in workload or []) + (f" --data {data}" if data else "")
    args += (f" --nab-data {nab_data}" if nab_data else "") + (f" --unit {unit}" if unit != "peak" else "")
    args += f" --train-fraction {train_fraction:g}" if train_fraction != 0.5 else ""
    result.command = "opsmind bench rightsize" + args
    publish(result, json_path=json_path, docs_path=docs, console=console, summary_dataset="all")


@bench_app.command("autoscale")
def autoscale(
    data: DataOption = None,
    nab_data: Annotated[
        Path | None, typer.Option("--nab-data", help="NAB folder (its data/*/*request*.csv series are replayed too).")
    ] = None,
    trace: Annotated[
        list[Path] | None,
        typer.Option("--trace", help="A CSV load trace (timestamp,value), repeatable; replaces the default traces."),
    ] = None,
    json_path: JsonOption = None,
    docs: DocsOption = DOCS_DEFAULT,
    workers: WorkersOption = 2,
) -> None:
    """Autoscaling replay: HPA (CPU 70 %), Holt-Winters (PHPA style), max(HPA, forecast) and opsmind per trace."""
    from opsmind.bench.autoscale import default_traces, run_autoscale
    from opsmind.bench.report import default_data_dir, publish
    from opsmind.core import OpsmindError

    console = Console()
    folder, nab = data or default_data_dir("traces"), nab_data or default_data_dir("nab")
    try:
        total = len(trace) if trace else len(default_traces(folder, nab))
        with Progress(console=console, transient=True) as bar:
            task = bar.add_task("autoscale: traces", total=total)
            result = run_autoscale(folder, nab, trace, workers=workers, progress=lambda _name: bar.advance(task))
    except (OpsmindError, OSError) as exc:
        _fail(str(exc))
    args = "".join(f" --trace {t}" for t in trace or []) + (f" --data {data}" if data else "")
    result.command = "opsmind bench autoscale" + args + (f" --nab-data {nab_data}" if nab_data else "")
    publish(result, json_path=json_path, docs_path=docs, console=console, summary_dataset="all")


@bench_app.command("rca")
def rca(
    data: DataOption = None,
    json_path: JsonOption = None,
    docs: DocsOption = DOCS_DEFAULT,
    day: Annotated[
        list[str] | None, typer.Option("--day", help="Only this day folder of rca_data/ (repeatable); default: all.")
    ] = None,
) -> None:
    """Nezha root-cause localisation (Online Boutique, Train Ticket): AC@1, AC@3, Avg@5 vs BARO-style and random."""
    from opsmind.bench.rca import count_faults, run_rca
    from opsmind.bench.report import default_data_dir, publish
    from opsmind.core import OpsmindError

    folder = data or default_data_dir("rca/nezha")
    console = Console()
    try:
        total = count_faults(folder, day)
        with Progress(console=console, transient=True) as bar:
            task = bar.add_task("RCA: faults", total=total)
            result = run_rca(folder, days=day, progress=lambda _name: bar.advance(task))
    except (OpsmindError, OSError) as exc:
        _fail(str(exc))
    args = (f" --data {data}" if data else "") + "".join(f" --day {d}" for d in day or [])
    result.command = "opsmind bench rca" + args
    publish(result, json_path=json_path, docs_path=docs, console=console)
bench_app.command("service")(service_bench)
