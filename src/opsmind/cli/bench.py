"""``opsmind bench ...``: benchmark commands on public data (see docs/benchmarks.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.progress import Progress

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
