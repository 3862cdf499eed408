"""``orirec ab-initio``: orientations of a new dataset with no model, by stochastic global projection matching."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from orirec.cli.common import (
    TrackFlag,
    TrackingUri,
    config_default,
    config_help,
    echo_table,
    log_outcome,
    make_tracker,
    progress_bars,
    tracked_run,
    tracking_done,
    user_errors,
)
from orirec.config import RefineConfig
from orirec.config.estimators import AbInitioConfig


def ab_initio(
    store: Annotated[Path, typer.Argument(help="projection store (STORE.zarr); ground truth is not read")],
    out: Annotated[Path, typer.Option("--out", "-o", help="output folder")] = Path("runs/ab-initio"),
    protein: Annotated[int | None, typer.Option(help="only the images of this protein (store index)")] = None,
    n: Annotated[int | None, typer.Option(help="only the first N images (of --protein)")] = None,
    iterations: Annotated[int, typer.Option(help="iterations per run (resolution 30 Å → 20 Å)")] = config_default(
        AbInitioConfig, "iterations"
    ),
    resolution: Annotated[
        float, typer.Option(help="resolution of the last iterations (Å); the first are at 30 Å")
    ] = config_default(AbInitioConfig, "resolution_end_A"),
    restarts: Annotated[
        int, typer.Option(help="runs from different random starts; those that agree are averaged per image")
    ] = config_default(AbInitioConfig, "restarts"),
    consensus: Annotated[
        bool,
        typer.Option(
            "--consensus/--best-only",
            help="average the restarts that agree (median angle apart < 30°), or keep the best-matching one only",
        ),
    ] = config_default(AbInitioConfig, "consensus"),
    minibatch: Annotated[
        tuple[int, int] | None, typer.Option(help=config_help(AbInitioConfig, "minibatch"))
    ] = config_default(AbInitioConfig, "minibatch"),
    max_shift: Annotated[float | None, typer.Option(help=config_help(AbInitioConfig, "max_shift_px"))] = config_default(
        AbInitioConfig, "max_shift_px"
    ),
    particle_radius: Annotated[
        float | None, typer.Option(help="particle radius (Å) of the map's mask; default: read off the images")
    ] = None,
    subset: Annotated[int, typer.Option(help=config_help(AbInitioConfig, "subset"))] = config_default(
        AbInitioConfig, "subset"
    ),
    num_workers: Annotated[int, typer.Option(help=config_help(AbInitioConfig, "num_workers"))] = config_default(
        AbInitioConfig, "num_workers"
    ),
    device: Annotated[str, typer.Option(help=config_help(AbInitioConfig, "device"))] = config_default(
        AbInitioConfig, "device"
    ),
    symmetry: Annotated[str, typer.Option(help=config_help(AbInitioConfig, "symmetry"))] = config_default(
        AbInitioConfig, "symmetry"
    ),
    refine_rounds: Annotated[
        int, typer.Option(help="then refine by local projection matching (4: the whole default schedule)")
    ] = config_default(RefineConfig, "rounds"),
    refine_resolution: Annotated[float, typer.Option(help=config_help(RefineConfig, "resolution_A"))] = config_default(
        RefineConfig, "resolution_A"
    ),
    seed: Annotated[int, typer.Option(help="seed of the random starts and draws (and of the half-map split)")] = 0,
    progress: Annotated[bool, typer.Option(help="show a progress bar")] = True,
    track: TrackFlag = True,
    tracking_uri: TrackingUri = None,
    experiment: Annotated[str, typer.Option(help="MLflow experiment")] = "orirec-ab-initio",
) -> None:
    """Orientations without a trained model: one map pooled from a subset's images, refined from random starts;
    then every image posed against it and refined, shard by shard (on Ray with --num-workers > 1 or RAY_ADDRESS).

    The restarts run on --subset random images (held in memory). Every iteration reconstructs a map, projects it
    on a global grid of rotations (15°) and draws each image's orientation from the softmax of its masked NCC
    with them, sharper each iteration, while the resolution goes from 30 Å to 20 Å; in-plane shifts are searched
    within the store's recorded range (imported particles: 10 % of the box; --max-shift sets it). Images with a
    CTF are phase-flipped first. Works where pairs of images are too noisy for common lines (σ² 16). The
    restarts that agree with one another (registered onto one reference, median angle apart under 30°) are
    averaged per image; when no two agree, the one whose images match their projections best is kept.

    Then every image gets the best rotation of the same grid against the subset's map (rotations ranked over
    trial shifts, the shift then searched for the best 4), and --refine-rounds gold-standard local rounds refine
    every image (after the first, every image is searched again on a 7.5° grid against the map of all, keeping
    the better pose). Each pass reads the store one shard at a time, so memory does not grow with the number of
    images. Last, the map is tested for Cn/Dn self-similarity: a symmetric or pseudo-symmetric particle is
    named. --symmetry imposes a point group (Cn, Dn) after the C1 restarts: later maps are made with it.

    Writes OUT/orientations.{csv,star}, OUT/ab_initio_map.mrc (and its half-maps, and the subset's map) and
    OUT/ab_initio_result.json; with --refine-rounds also OUT/orientations_unrefined.csv (after the global pass).
    Each finished restart is kept in OUT/ab_initio_checkpoint.npz and each finished pass in
    OUT/ab_initio_passes.npz: run the same command again after an interruption and it resumes there (more
    --restarts run only the new ones).

    Example: orirec ab-initio test.zarr --protein 19 --out runs/ab-initio --refine-rounds 4

    On 2 Ray workers, or a cluster: orirec ab-initio particles.zarr --refine-rounds 4 --num-workers 2

    A particle the hint calls C2 (or that you know is): orirec ab-initio particles.zarr --symmetry C2

    Then: orirec evaluate test.zarr --orientations runs/ab-initio/orientations.csv

    Tracked in MLflow (OUT/mlflow.db, or $MLFLOW_TRACKING_URI, or --tracking-uri) unless --no-track.
    """
    from orirec.config import validate
    from orirec.pipeline.ab_initio import stage_ab_initio
    from orirec.store import open_store

    with user_errors():
        if iterations < 1 or restarts < 1 or (n is not None and n < 10) or not 0 < resolution <= 30:
            raise ValueError("need --iterations >= 1, --restarts >= 1, --n >= 10 and 0 < --resolution <= 30")
        refine = validate(RefineConfig, {"rounds": refine_rounds, "resolution_A": refine_resolution}, "command line")
        settings: dict[str, Any] = {"iterations": iterations, "restarts": restarts, "consensus": consensus}
        settings |= {"particle_radius_A": particle_radius, "resolution_end_A": resolution, "max_shift_px": max_shift}
        settings |= {"minibatch": minibatch, "subset": subset, "num_workers": num_workers, "device": device}
        settings |= {"symmetry": symmetry}
        open_store(store)  # a bad store or --out fails here, before any MLflow run
        out.mkdir(parents=True, exist_ok=True)
        tracker = make_tracker(track, tracking_uri, experiment, out)
        params = {**settings, "refine": refine.model_dump(mode="json"), "store": str(store), "protein": protein,
                  "n": n, "seed": seed}  # fmt: skip
        with tracked_run(tracker, f"ab-initio-{out.name}", params), progress_bars(progress) as bars:
            res = stage_ab_initio(
                store, out, protein=protein, n=n, settings=settings, refine=refine, seed=seed,
                progress=bars("ab initio"), refine_progress=bars("refine"),
            )  # fmt: skip
            files = ("orientations.csv", "orientations.star", "ab_initio_result.json", "ab_initio_map.mrc")  # maps: MBs
            log_outcome(tracker, res, tuple(out / f for f in files))
    echo_table(f"orientations {out / 'orientations.csv'}", {k: v for k, v in res.items() if isinstance(v, int | float)})
    typer.echo(f"symmetry: {res['ab_initio_symmetry_message']}")
    tracking_done(tracker)
