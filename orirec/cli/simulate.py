"""``orirec simulate``: project structures into a sharded Zarr store."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from orirec.cli.common import config_default, config_help, echo_table, print_line, progress_bars, user_errors
from orirec.config import SimulateConfig

S = SimulateConfig
_CTF = {k: config_default(S, k) for k in ("defocus_range_A", "voltage_kV", "cs_mm", "amp_contrast")}
_CTF_HELP = (
    f"apply a CTF (RELION sign convention): defocus {_CTF['defocus_range_A'][0] / 1e4:.1f}–"
    f"{_CTF['defocus_range_A'][1] / 1e4:.1f} µm, {_CTF['voltage_kV']:g} kV, Cs {_CTF['cs_mm']:g} mm, "
    f"{_CTF['amp_contrast']:.0%} amplitude (other values through --set)"
)


def simulate(
    inputs: Annotated[
        list[str] | None,
        typer.Argument(
            help="PDB/mmCIF/MRC files, folders of them, a manifest CSV, 'pdb:1ABC' (mirror or download), "
            "'pseudo:SEED' for the synthetic pseudo-protein, or 'pseudo-random:FIRST-LAST' for synthetic proteins of "
            "random shape and size (training diversity)"
        ),
    ] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="output store (STORE.zarr)")] = ...,  # type: ignore[assignment]
    pdb_ids: Annotated[str | None, typer.Option(help="comma-separated PDB ids, same as INPUT items 'pdb:ID'")] = None,
    pdb_mirror: Annotated[
        Path | None, typer.Option(help="local PDB mirror folder (1abc.cif.gz or ab/1abc.cif.gz); env ORIREC_PDB_MIRROR")
    ] = None,
    n_per_structure: Annotated[int, typer.Option(help=config_help(S, "n_per_structure"))] = config_default(
        S, "n_per_structure"
    ),
    box: Annotated[int, typer.Option(help=config_help(S, "box_px"))] = config_default(S, "box_px"),
    pixel_size: Annotated[float, typer.Option(help=config_help(S, "pixel_size_A"))] = config_default(S, "pixel_size_A"),
    resolution: Annotated[float | None, typer.Option(help=config_help(S, "resolution_A"))] = config_default(
        S, "resolution_A"
    ),
    sigma2: Annotated[float, typer.Option(help=config_help(S, "sigma2"))] = config_default(S, "sigma2"),
    shift: Annotated[float, typer.Option(help=config_help(S, "shift_px"))] = config_default(S, "shift_px"),
    shift_distribution: Annotated[str, typer.Option(help=config_help(S, "shift_distribution"))] = config_default(
        S, "shift_distribution"
    ),
    orientations: Annotated[str, typer.Option(help=config_help(S, "orientations"))] = config_default(S, "orientations"),
    preferred_direction: Annotated[
        list[str] | None,
        typer.Option(help="with --orientations preferred: a viewing direction 'TILT,ROT' (rad) or 'X,Y,Z'; repeat"),
    ] = None,
    preferred_kappa: Annotated[float, typer.Option(help=config_help(S, "preferred_kappa"))] = config_default(
        S, "preferred_kappa"
    ),
    uniform_fraction: Annotated[
        float, typer.Option(help=config_help(S, "preferred_uniform_fraction"))
    ] = config_default(S, "preferred_uniform_fraction"),
    normalize: Annotated[bool, typer.Option(help=config_help(S, "normalize"))] = config_default(S, "normalize"),
    symmetry: Annotated[str, typer.Option(help=config_help(S, "symmetry"))] = config_default(S, "symmetry"),
    seed: Annotated[int, typer.Option(help=config_help(S, "seed"))] = config_default(S, "seed"),
    split: Annotated[str | None, typer.Option(help="with a manifest CSV: keep only this split")] = None,
    shard_size: Annotated[int, typer.Option(help=config_help(S, "shard_size"))] = config_default(S, "shard_size"),
    ctf: Annotated[bool, typer.Option(help=_CTF_HELP)] = config_default(S, "ctf"),
    pad: Annotated[int, typer.Option(help=config_help(S, "pad"))] = config_default(S, "pad"),
    sampling: Annotated[str, typer.Option(help=config_help(S, "sampling"))] = config_default(S, "sampling"),
    compile: Annotated[str, typer.Option(help=config_help(S, "compile"))] = config_default(S, "compile"),
    backend: Annotated[str, typer.Option(help=config_help(S, "backend"))] = config_default(S, "backend"),
    device: Annotated[str, typer.Option(help=config_help(S, "device"))] = config_default(S, "device"),
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
    from orirec.config import parse_set, validate
    from orirec.pipeline.stages import stage_simulate
    from orirec.simulate.to_store import ShardsFailedError

    with user_errors():
        inputs = [*(inputs or []), *(f"pdb:{i.strip()}" for i in (pdb_ids or "").split(",") if i.strip())]
        if pdb_mirror is not None or any(i.lower().startswith("pdb:") for i in inputs):
            from orirec.structures.pdb_ids import resolve_pdb_id

            inputs = [str(resolve_pdb_id(i, mirror=pdb_mirror)) if i.lower().startswith("pdb:") else i for i in inputs]
        directions = [_direction(d) for d in preferred_direction or []]
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
                **({"preferred_directions": directions} if directions else {}),  # else the config's default
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
