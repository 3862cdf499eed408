"""``orirec simulate``: project structures into a sharded Zarr store."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from orirec.cli.common import echo_table, print_line, progress_bars, user_errors


def simulate(
    inputs: Annotated[
        list[str] | None,
        typer.Argument(
            help="PDB/mmCIF/MRC files, folders of them, a manifest CSV, 'pdb:1ABC' (mirror or download), "
            "'pseudo:SEED' for the synthetic pseudo-protein, or 'pseudo-random:FIRST-LAST' for synthetic proteins of "
            "random shape and size (training diversity)"
        ),
    ] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="output store (STORE.zarr)")] = ...,
    pdb_ids: Annotated[str | None, typer.Option(help="comma-separated PDB ids, same as INPUT items 'pdb:ID'")] = None,
    pdb_mirror: Annotated[
        Path | None, typer.Option(help="local PDB mirror folder (1abc.cif.gz or ab/1abc.cif.gz); env ORIREC_PDB_MIRROR")
    ] = None,
    n_per_structure: Annotated[int, typer.Option(help="projections per structure")] = 2000,
    box: Annotated[int, typer.Option(help="image box (px)")] = 48,
    pixel_size: Annotated[float, typer.Option(help="pixel size (Å)")] = 2.5,
    resolution: Annotated[float | None, typer.Option(help="atom Gaussian resolution (Å); default 4.5 px")] = None,
    sigma2: Annotated[float, typer.Option(help="noise variance / clean image variance (16 ⇔ SNR 1/16)")] = 0.0,
    shift: Annotated[
        float, typer.Option(help="shift scale per axis (px): half-width (uniform, triangular) or σ (gaussian)")
    ] = 0.0,
    shift_distribution: Annotated[
        str, typer.Option(help="shift distribution per axis: uniform, gaussian or triangular")
    ] = "uniform",
    orientations: Annotated[
        str, typer.Option(help="uniform (SO(3)), uniform_euler, or preferred (von Mises-Fisher mixture)")
    ] = "uniform",
    preferred_direction: Annotated[
        list[str] | None,
        typer.Option(help="with --orientations preferred: a viewing direction 'TILT,ROT' (rad) or 'X,Y,Z'; repeat"),
    ] = None,
    preferred_kappa: Annotated[float, typer.Option(help="von Mises-Fisher concentration (0 = uniform)")] = 10.0,
    uniform_fraction: Annotated[float, typer.Option(help="with preferred: fraction of uniform orientations")] = 0.0,
    normalize: Annotated[
        bool, typer.Option(help="per image: background (outside 0.375 box) to mean 0, std 1, as RELION")
    ] = False,
    symmetry: Annotated[
        str, typer.Option(help="point group Cn/Dn of the structures (a manifest's symmetry_hint wins)")
    ] = "C1",
    seed: Annotated[int, typer.Option(help="random seed")] = 0,
    split: Annotated[str | None, typer.Option(help="with a manifest CSV: keep only this split")] = None,
    shard_size: Annotated[int, typer.Option(help="images per shard (one writer each)")] = 256,
    ctf: Annotated[
        bool, typer.Option(help="apply a CTF (defocus 1.0–2.5 µm, 300 kV, Cs 2.7 mm, 10% amplitude)")
    ] = False,
    pad: Annotated[int, typer.Option(help="Fourier padding of the projector (3: 0.4% error; 2: 1%, less memory)")] = 3,
    sampling: Annotated[
        str, typer.Option(help="projector slice grid: auto, image (fast) or padded (density in the box corners)")
    ] = "auto",
    compile: Annotated[str, typer.Option(help="torch.compile the projector: auto (>= 20,000 images), on or off")] = (
        "auto"
    ),
    backend: Annotated[
        str,
        typer.Option(
            help="projector: auto (nufft on a CPU when finufft is installed, else torch), nufft, torch, "
            "or astra (CUDA GPU only)"
        ),
    ] = "auto",
    device: Annotated[str, typer.Option(help="torch device of the projector: cpu, cuda, cuda:1 ...")] = "cpu",
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="any other simulation field as KEY=VALUE (YAML value), e.g. defocus_range_A=[5000,20000], "
            "bfactor_range_A2=[0,100], voltage_kV=200; repeat",
        ),
    ] = None,
    num_workers: Annotated[int, typer.Option(min=1, help="Ray actors writing shards in parallel (1: in-process)")] = 1,
    overwrite: Annotated[
        bool, typer.Option(help="replace an existing orirec store of another config (never another folder)")
    ] = False,
    progress: Annotated[bool, typer.Option(help="show a progress bar")] = True,
) -> None:
    """Simulate projections of structures into a Zarr store; re-running resumes an interrupted run.

    Example: orirec simulate ../shared/data/maps/5j0n.mrc --box 64 --pixel-size 4.3 --sigma2 16 --out 5j0n.zarr

    By PDB id (a local mirror, else downloaded from RCSB into ~/.cache/orirec/pdb):
    orirec simulate --pdb-ids 1ACB,5J0N --out s.zarr

    Preferred orientations (top views), Gaussian shifts, RELION-style normalization:
    orirec simulate pseudo:0 --orientations preferred --preferred-direction 0,0 --preferred-kappa 20
    --shift 1.5 --shift-distribution gaussian --sigma2 16 --normalize --out top.zarr

    CTF from custom ranges (any SimulateConfig field through --set):
    orirec simulate pseudo:0 --ctf --set defocus_range_A=[5000,20000] --set bfactor_range_A2=[0,80] --out c.zarr
    """
    from orirec.config import SimulateConfig, parse_set, validate
    from orirec.pipeline.stages import stage_simulate
    from orirec.simulate.to_store import ShardsFailedError

    with user_errors():
        inputs = [*(inputs or []), *(f"pdb:{i.strip()}" for i in (pdb_ids or "").split(",") if i.strip())]
        if pdb_mirror is not None or any(i.lower().startswith("pdb:") for i in inputs):
            from orirec.structures.pdb_ids import resolve_pdb_id

            inputs = [str(resolve_pdb_id(i, mirror=pdb_mirror)) if i.lower().startswith("pdb:") else i for i in inputs]
        directions = [_direction(d) for d in preferred_direction] if preferred_direction else [(0.0, 0.0)]
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
                "shift_distribution": shift_distribution,
                "orientations": orientations,
                "preferred_directions": directions,
                "preferred_kappa": preferred_kappa,
                "preferred_uniform_fraction": uniform_fraction,
                "normalize": normalize,
                "symmetry": symmetry,
                "pad": pad,
                "sampling": sampling,
                "compile": compile,
                "backend": backend,
                "device": device,
                **parse_set(set_ or []),
            },
            "command line",
        )
        try:
            with progress_bars(progress) as bars:
                res = stage_simulate(
                    cfg, out, overwrite=overwrite, progress=bars("simulate"), split=split, num_workers=num_workers
                )
        except ShardsFailedError as e:  # a killed worker: not the user's fault, but one clear line and exit 1
            print_line("[bold red]error:[/]", str(e))
            raise typer.Exit(1) from None
    echo_table(f"store {out}", res)


def _direction(text: str) -> tuple[float, ...]:
    """'TILT,ROT' (rad) or 'X,Y,Z' -> a tuple of floats (ValueError naming the option otherwise)."""
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) not in (2, 3):
        raise ValueError(f"--preferred-direction: expected 'TILT,ROT' in rad or 'X,Y,Z', got {text!r}")
    return values
