"""The ``orirec`` command line (typer); one module per command."""

from __future__ import annotations

from typing import Annotated

import typer

from orirec.cli.ab_initio import ab_initio
from orirec.cli.compare import compare
from orirec.cli.demo import demo
from orirec.cli.evaluate import evaluate, evaluate_model
from orirec.cli.launch import launch
from orirec.cli.particles import export, import_particles
from orirec.cli.reconstruct import reconstruct
from orirec.cli.recover import recover
from orirec.cli.refine import refine
from orirec.cli.report import report
from orirec.cli.run import run
from orirec.cli.scaling import per_protein, scaling
from orirec.cli.simulate import simulate
from orirec.cli.train import train
from orirec.cli.tune import tune

app = typer.Typer(
    help="orirec: recover the 3D orientations of cryo-EM projections from learned distances.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def options(
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="show MLflow's own INFO and WARNING lines (hidden by default)")
    ] = False,
) -> None:
    """orirec: recover the 3D orientations of cryo-EM projections from learned distances."""
    from orirec.tracking import set_verbose

    set_verbose(verbose)


for fn in (simulate, train, recover, refine, reconstruct, evaluate, demo, run, launch, report):
    app.command()(fn)
app.command(name="import")(import_particles)
app.command()(export)
app.command()(tune)
app.command(name="evaluate-model")(evaluate_model)
app.command()(compare)
app.command(name="ab-initio")(ab_initio)
app.command()(scaling)
app.command(name="per-protein")(per_protein)


def main() -> None:
    """Console-script entry point."""
    app()


def expand_env_main() -> None:
    """``orirec`` with every ``${ORIREC_...}`` in its arguments filled in from the environment: the entry point of
    ``orirec launch``'s pods (:func:`orirec.launch.kuberay.expand_env_args`)."""
    import sys

    from orirec.launch.kuberay import expand_env_args

    sys.argv[1:] = expand_env_args(sys.argv[1:])
    main()
