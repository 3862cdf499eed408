"""``orirec simulate``: project structures into a sharded Zarr store."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from orirec.cli.common import echo_table, progress_bars, user_errors


def simulate(
    inputs: Annotated[
        list[str],
        typer.Argument(
            help="PDB/mmCIF/MRC files, folders of them, a manifest CSV, "
            "or 'pseudo:SEED' for the synthetic pseudo-protein"
        ),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="output store (STORE.zarr)")],
    n_per_structure: Annotated[int, typer.Option(help="projections per structure")] = 2000,
    box: Annotated[int, typer.Option(help="image box (px)")] = 48,
    pixel_size: Annotated[float, typer.Option(help="pixel size (Å)")] = 2.5,
    resolution: Annotated[float | None, typer.Option(help="atom Gaussian resolution (Å); default 4.5 px")] = None,
    sigma2: Annotated[float, typer.Option(help="noise variance / clean image variance (16 ⇔ SNR 1/16)")] = 0.0,
    shift: Annotated[float, typer.Option(help="max shift per axis (px), uniform")] = 0.0,
    seed: Annotated[int, typer.Option(help="random seed")] = 0,
    split: Annotated[str | None, typer.Option(help="with a manifest CSV: keep only this split")] = None,
    shard_size: Annotated[int, typer.Option(help="images per shard (one writer each)")] = 256,
    ctf: Annotated[
        bool, typer.Option(help="apply a CTF (defocus 1.0–2.5 µm, 300 kV, Cs 2.7 mm, 10% amplitude)")
    ] = False,
    num_workers: Annotated[int, typer.Option(help="Ray actors writing shards in parallel (1: in-process)")] = 1,
    overwrite: Annotated[bool, typer.Option(help="replace an existing store of another config")] = False,
    progress: Annotated[bool, typer.Option(help="show a progress bar")] = True,
) -> None:
    """Simulate projections of structures into a Zarr store; re-running resumes an interrupted run.

    Example: orirec simulate ../shared/data/maps/5j0n.mrc --box 64 --pixel-size 4.3 --sigma2 16 --out 5j0n.zarr
    """
    from orirec.config import SimulateConfig, validate
    from orirec.pipeline.stages import stage_simulate

    with user_errors():
        cfg = validate(
            SimulateConfig,
            {
                "inputs": inputs,
                "n_per_structure": n_per_structure,
                "box_px": box,
                "pixel_size_A": pixel_size,
                "resolution_A": resolution,
                "sigma2": sigma2,
                "shift_px": shift,
                "seed": seed,
                "shard_size": shard_size,
                "ctf": ctf,
            },
            "command line",
        )
        with progress_bars(progress) as bars:
            res = stage_simulate(
                cfg, out, overwrite=overwrite, progress=bars("simulate"), split=split, num_workers=num_workers
            )
    echo_table(f"store {out}", res)
