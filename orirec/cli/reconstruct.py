"""``orirec reconstruct``: a map from images and orientations."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from orirec.cli.common import config_default, config_help, echo_table, user_errors
from orirec.config import ReconstructConfig

STAR_ONLY = "with a STAR input, as orirec import"


def reconstruct(
    store: Annotated[
        Path, typer.Argument(help="projection store (STORE.zarr), or a particles STAR with angles (imported first)")
    ],
    orientations: Annotated[
        Path | None,
        typer.Option(
            help="orientations of the store's rows: an orirec CSV or a STAR (orirec's, or RELION's e.g. "
            "run_data.star); default: the store's own angles. Refused with a STAR input, which uses its own angles"
        ),
    ] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="output map (.mrc)")] = Path("map.mrc"),
    pad: Annotated[int, typer.Option(help=config_help(ReconstructConfig, "pad"))] = config_default(
        ReconstructConfig, "pad"
    ),
    box: Annotated[int | None, typer.Option(help=f"box (px), {STAR_ONLY}")] = None,
    pixel_size: Annotated[float | None, typer.Option(help=f"pixel size (Å) by Fourier crop/pad, {STAR_ONLY}")] = None,
    star_pixel_size: Annotated[
        float | None, typer.Option(help="pixel size (Å) of the stack when the STAR file has none")
    ] = None,
    normalize: Annotated[bool, typer.Option(help=f"background mean 0, std 1 outside a disk, {STAR_ONLY}")] = True,
    bg_radius: Annotated[float, typer.Option(help="background disk radius, fraction of half the box")] = 0.75,
    phase_flip: Annotated[bool, typer.Option(help=f"multiply by sign(CTF), {STAR_ONLY}")] = False,
    center: Annotated[bool, typer.Option(help=f"centre each image by its rlnOriginX/Y, {STAR_ONLY}")] = False,
) -> None:
    """Reconstruct a map by direct Fourier inversion; the MRC carries the store's pixel size.

    Example: orirec reconstruct runs/demo/projections.zarr --orientations runs/demo/recover/orientations.csv --out m.mrc

    From a RELION refinement of imported particles: orirec reconstruct particles.zarr --orientations run_data.star

    From particles: orirec reconstruct rec/particles.star --out m.mrc  (the STAR's rlnAngleRot/Tilt/Psi; the import
    options --box, --pixel-size, --star-pixel-size, --no-normalize, --bg-radius, --phase-flip, --center apply)
    """
    from orirec.config import validate
    from orirec.pipeline.particles import ImportOptions, reconstruct_particles
    from orirec.pipeline.stages import stage_reconstruct

    with user_errors():
        cfg = validate(ReconstructConfig, {"pad": pad}, "command line")
        opts = ImportOptions(box_px=box, pixel_size_A=pixel_size, normalize=normalize, bg_radius_frac=bg_radius,
                             phase_flip=phase_flip, center=center, star_pixel_size_A=star_pixel_size)  # fmt: skip
        if store.suffix.lower() == ".star":
            if orientations is not None:
                raise ValueError(f"{store}: --orientations is for a STORE; a STAR is reconstructed at its own angles")
            res = reconstruct_particles(cfg, store, out, opts)
        else:
            if opts != ImportOptions():
                raise ValueError(f"{store}: import options (--box, --pixel-size, --no-normalize, ...) apply to a STAR")
            res = dict(stage_reconstruct(cfg, store, orientations, out))
    echo_table("reconstruction", res)
