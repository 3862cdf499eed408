"""``orirec reconstruct``: a map from images and orientations."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from orirec.cli.common import echo_table, user_errors


def reconstruct(
    store: Annotated[Path, typer.Argument(help="projection store (STORE.zarr)")],
    orientations: Annotated[Path, typer.Option(help="orientations CSV written by orirec recover")],
    out: Annotated[Path, typer.Option("--out", "-o", help="output map (.mrc)")] = Path("map.mrc"),
    pad: Annotated[int, typer.Option(help="Fourier padding factor")] = 2,
) -> None:
    """Reconstruct a map by direct Fourier inversion; the MRC carries the store's pixel size.

    Example: orirec reconstruct runs/demo/projections.zarr --orientations runs/demo/recover/orientations.csv --out m.mrc
    """
    from orirec.config import ReconstructConfig, validate
    from orirec.pipeline.stages import stage_reconstruct

    with user_errors():
        cfg = validate(ReconstructConfig, {"pad": pad}, "command line")
        res = stage_reconstruct(cfg, store, orientations, out)
    echo_table("reconstruction", res)
