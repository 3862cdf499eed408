"""The ``orirec`` command line (typer); one module per command."""

from __future__ import annotations

import typer

from orirec.cli.demo import demo
from orirec.cli.evaluate import evaluate
from orirec.cli.reconstruct import reconstruct
from orirec.cli.recover import recover
from orirec.cli.simulate import simulate
from orirec.cli.train import train

app = typer.Typer(
    help="orirec: recover the 3D orientations of cryo-EM projections from learned distances.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
for fn in (simulate, train, recover, reconstruct, evaluate, demo):
    app.command()(fn)


def main() -> None:
    """Console-script entry point."""
    app()
