"""``orirec import`` and ``orirec export``: RELION particle stacks (STAR + .mrcs) in and out of a store."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from orirec.cli.common import echo_table, progress_bars, user_errors


def import_particles(
    star: Annotated[Path, typer.Argument(help="particles STAR file (rlnImageName index@stack.mrcs, optics table)")],
    out: Annotated[Path, typer.Option("--out", "-o", help="output store (STORE.zarr)")],
    box: Annotated[int | None, typer.Option(help="output box (px); default: the resampled stack's")] = None,
    pixel_size: Annotated[float | None, typer.Option(help="output pixel size (Å), by Fourier crop/pad")] = None,
    star_pixel_size: Annotated[
        float | None, typer.Option(help="pixel size (Å) of the stack when the STAR file has none")
    ] = None,
    normalize: Annotated[bool, typer.Option(help="background mean 0, std 1 outside a disk")] = True,
    bg_radius: Annotated[float, typer.Option(help="background disk radius, fraction of half the box")] = 0.75,
    phase_flip: Annotated[bool, typer.Option(help="multiply by sign(CTF) (needs CTF columns)")] = False,
    center: Annotated[
        bool, typer.Option(help="shift each image by its rlnOriginX/YAngst to centre the particle")
    ] = False,
    shard_size: Annotated[int, typer.Option(help="images per shard")] = 256,
    overwrite: Annotated[bool, typer.Option(help="replace an existing store of another import")] = False,
    progress: Annotated[bool, typer.Option(help="show a progress bar")] = True,
) -> None:
    """Import particles (STAR + .mrcs) into a store, shard by shard; re-running resumes an interrupted import.

    Example: orirec import Extract/job012/particles.star --pixel-size 4.25 --box 64 --out particles.zarr
    """
    from orirec.pipeline.particles import ImportOptions
    from orirec.pipeline.particles import import_particles as run_import

    with user_errors():
        opts = ImportOptions(
            box_px=box,
            pixel_size_A=pixel_size,
            normalize=normalize,
            bg_radius_frac=bg_radius,
            phase_flip=phase_flip,
            center=center,
            shard_size=shard_size,
            star_pixel_size_A=star_pixel_size,
        )
        with progress_bars(progress) as bars:
            res = run_import(star, out, opts, overwrite=overwrite, progress=bars("import"))
    echo_table(f"store {out}", res)


def export(
    store: Annotated[Path, typer.Argument(help="projection store (STORE.zarr)")],
    out: Annotated[Path, typer.Option("--out", "-o", help="output STAR file; the stack is written beside it")],
    maps: Annotated[bool, typer.Option(help="also write the reference volumes as MRC maps")] = True,
    overwrite: Annotated[bool, typer.Option(help="replace existing output files (refused otherwise)")] = False,
) -> None:
    """Export a store to OUT.star + OUT.mrcs (images, angles, origins, CTF) and OUT_ref<k>.mrc maps.

    Example: orirec export runs/demo/projections.zarr --out exported/particles.star
    """
    from orirec.pipeline.particles import export_particles

    with user_errors():
        res = export_particles(store, out, maps=maps, overwrite=overwrite)
    echo_table("exported", {k: (", ".join(v) if isinstance(v, list) else v) for k, v in res.items()})
