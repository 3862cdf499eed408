"""``orirec refine``: projection-matching refinement of any orientations of a store's images."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

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

F = RefineConfig
#: the command refines: its default runs the whole schedule (RefineConfig.rounds, 0, means no refinement after recovery)
WHOLE_SCHEDULE = len(config_default(F, "schedule_deg"))


def refine(
    store: Annotated[Path, typer.Argument(help="projection store (STORE.zarr)")],
    orientations: Annotated[
        Path, typer.Argument(help="orientations of store rows: orirec CSV (recover, compare) or STAR (orirec, RELION)")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="output folder")] = Path("runs/refine"),
    rounds: Annotated[
        int, typer.Option(help=f"rounds of local search ({WHOLE_SCHEDULE}: the whole default schedule)")
    ] = WHOLE_SCHEDULE,
    resolution: Annotated[float, typer.Option(help=config_help(F, "resolution_A"))] = config_default(F, "resolution_A"),
    box: Annotated[int | None, typer.Option(help=config_help(F, "box_px"))] = config_default(F, "box_px"),
    max_shift: Annotated[float | None, typer.Option(help=config_help(F, "max_shift_px"))] = config_default(
        F, "max_shift_px"
    ),
    seed: Annotated[int, typer.Option(help="seed of the split into half-maps")] = 0,
    progress: Annotated[bool, typer.Option(help="show a progress bar")] = True,
    track: TrackFlag = True,
    tracking_uri: TrackingUri = None,
    experiment: Annotated[str, typer.Option(help="MLflow experiment")] = "orirec-refine",
) -> None:
    """Refine orientations by local projection matching against gold-standard half-maps (no ground truth).

    Each round, every image tries rotations on a grid in a ball around its orientation, against projections
    of the map of the other half of the images (default radius/step: 12°/4°, 4°/1.33°, 6°/2°, 2°/0.67°).

    Writes OUT/orientations.{csv,star}, OUT/orientations_unrefined.csv and OUT/refine_result.json.
    An interrupted run resumes from OUT/refine_checkpoint.npz; more --rounds extend a finished one.

    Example: orirec refine runs/demo/projections.zarr runs/demo/recover/orientations.csv --out runs/demo/refine

    Then: orirec evaluate runs/demo/projections.zarr --orientations runs/demo/refine/orientations.csv

    Tracked in MLflow (OUT/mlflow.db, or $MLFLOW_TRACKING_URI, or --tracking-uri) unless --no-track.
    """
    from orirec.config import validate
    from orirec.pipeline.refine import stage_refine
    from orirec.store import open_store

    with user_errors():
        cfg = validate(
            RefineConfig,
            {"rounds": rounds, "resolution_A": resolution, "box_px": box, "max_shift_px": max_shift},
            "command line",
        )
        if rounds < 1:
            raise ValueError(f"--rounds must be at least 1, got {rounds}")
        open_store(store)  # a bad store or orientation file, or --out, fails here, before any MLflow run
        if not orientations.is_file():
            raise FileNotFoundError(f"{orientations}: no such orientation file")
        out.mkdir(parents=True, exist_ok=True)
        tracker = make_tracker(track, tracking_uri, experiment, out)
        params = {**cfg.model_dump(mode="json"), "store": str(store), "orientations": str(orientations), "seed": seed}
        with tracked_run(tracker, f"refine-{out.name}", params), progress_bars(progress) as bars:
            res = stage_refine(cfg, store, orientations, out, seed=seed, progress=bars("refine"))
            files = ("orientations.csv", "orientations.star", "refine_result.json")
            log_outcome(tracker, res, tuple(out / f for f in files))
    echo_table(
        f"orientations {out / 'orientations.csv'}", {k: v for k, v in res.items() if isinstance(v, (int, float))}
    )
    tracking_done(tracker)
