"""``orirec evaluate``: orientation errors, distance quality and FSC against the ground truth."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from orirec.cli.common import echo_table, user_errors


def evaluate(
    store: Annotated[Path, typer.Argument(help="projection store with ground truth (STORE.zarr)")],
    orientations: Annotated[Path, typer.Option(help="orientations CSV written by orirec recover")],
    graph: Annotated[Path | None, typer.Option(help="graph.npz from orirec recover (distance quality)")] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="output folder for metrics.json")] = Path("evaluate"),
) -> None:
    """Metrics of DESIGN §6 (degrees): err_o4, err_rot, err_dir, acc@10/20, distance MAE, FSC (Å).

    Example: orirec evaluate runs/demo/projections.zarr --orientations runs/demo/recover/orientations.csv
    """
    from orirec.pipeline.stages import stage_evaluate

    with user_errors():
        res = stage_evaluate(store, orientations, out, graph=graph)
    echo_table(f"metrics ({out / 'metrics.json'})", res)
