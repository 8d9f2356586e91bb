"""The ``opsmind`` command. Each command is a few lines: parse, call a library function, format."""

from __future__ import annotations

import typer

from opsmind import __version__
from opsmind.cli.bench import bench_app
from opsmind.cli.capacity import capacity
from opsmind.cli.demo import demo
from opsmind.cli.detect import detect
from opsmind.cli.forecast import forecast
from opsmind.cli.playbook import playbook_app
from opsmind.cli.rca import rca
from opsmind.cli.rightsize import rightsize
from opsmind.cli.scale import scale_app
from opsmind.cli.serve import init, serve
from opsmind.cli.token import token_app
from opsmind.cli.traces import traces_app

app = typer.Typer(
    name="opsmind",
    help="opsmind: anomaly detection, forecasting, scaling, rightsizing and root cause analysis for your services.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(bench_app, name="bench")
app.command("demo")(demo)
app.command("serve")(serve)
app.command("init")(init)
app.command("detect")(detect)
app.command("forecast")(forecast)
app.command("capacity")(capacity)
app.command("rca")(rca)
app.command("rightsize")(rightsize)
app.add_typer(traces_app, name="traces")
app.add_typer(scale_app, name="scale")
app.add_typer(playbook_app, name="playbook")
app.add_typer(token_app, name="token")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"opsmind {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """opsmind: an AIOps engine whose claims are benchmark commands you can rerun."""


if __name__ == "__main__":  # pragma: no cover
    app()
