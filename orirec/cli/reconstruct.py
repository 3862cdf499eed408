"""``orirec reconstruct``: a map from images and orientations."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from orirec.cli.common import echo_table, user_errors


def reconstruct(
    store: Annotated[Path, typer.Argument(help="projection store (STORE.zarr), or a particles STAR with angles")],
    orientations: Annotated[
        Path | None, typer.Option(help="orientations CSV written by orirec recover (not with a STAR)")
    ] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="output map (.mrc)")] = Path("map.mrc"),
    pad: Annotated[int, typer.Option(help="Fourier padding factor")] = 2,
) -> None:
    """Reconstruct a map by direct Fourier inversion; the MRC carries the store's pixel size.

    Example: orirec reconstruct runs/demo/projections.zarr --orientations runs/demo/recover/orientations.csv --out m.mrc

    From particles: orirec reconstruct rec/particles.star --out m.mrc  (the STAR's rlnAngleRot/Tilt/Psi)
    """
    from orirec.config import ReconstructConfig, validate
    from orirec.pipeline.stages import stage_reconstruct

    with user_errors():
        cfg = validate(ReconstructConfig, {"pad": pad}, "command line")
        if store.suffix.lower() == ".star":
            from orirec.pipeline.particles import reconstruct_particles

            res = reconstruct_particles(cfg, store, out)
        elif orientations is None:
            raise ValueError("reconstruct needs --orientations with a STORE (or a STAR file with angles)")
        else:
            res = stage_reconstruct(cfg, store, orientations, out)
    echo_table("reconstruction", res)
