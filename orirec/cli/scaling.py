"""``orirec scaling`` and ``orirec per-protein``: how a distance model does on unseen proteins (issue 9)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from orirec.cli.common import console, progress_bars, user_errors

_TRACK = Annotated[bool, typer.Option(help="log to MLflow (sqlite in OUT unless --tracking-uri)")]
_URI = Annotated[str | None, typer.Option(help="MLflow tracking URI")]


def scaling(
    train_store: Annotated[Path, typer.Argument(help="training store (train split, with reference volumes)")],
    test_store: Annotated[Path, typer.Argument(help="test store (unseen proteins, ground truth)")],
    out: Annotated[Path, typer.Option("--out", "-o", help="output folder (resumes a study already there)")] = Path(
        "runs/scaling"
    ),
    counts: Annotated[str, typer.Option(help="comma-separated numbers of training structures")] = "1,10,30,100,275",
    config: Annotated[
        Path | None,
        typer.Option(help="TrainConfig YAML: the training budget of every count [pipelines/scaling-train.yaml]"),
    ] = None,
    val_store: Annotated[Path | None, typer.Option(help="validation store (val split) for the val MAE")] = None,
    images_per_protein: Annotated[int, typer.Option(help="test images recovered per protein")] = 150,
    recover_proteins: Annotated[
        int, typer.Option(help="test proteins recovered end to end (a seeded choice; 0 = all)")
    ] = 12,
    recover_steps: Annotated[int, typer.Option(help="refinement steps of each recovery")] = 200,
    seed: Annotated[int, typer.Option(help="seed of the subsets and the test choice")] = 0,
    progress: Annotated[bool, typer.Option(help="show progress bars")] = True,
    track: _TRACK = True,
    tracking_uri: _URI = None,
) -> None:
    """Data-scaling study: train on 1, 10, 30, 100, 275 structures (nested subsets, same budget), then score
    each model on unseen proteins: distance MAE (val, test) and err_rot of recovered orientations.

    Writes OUT/scaling.{md,csv,json,png} and OUT/nNNN/ (checkpoints, per-protein table) for each count.

    Example: orirec scaling train.zarr test.zarr --val-store val.zarr --config pipelines/scaling-train.yaml
    --out runs/scaling
    """
    from orirec.config import TrainConfig, load_yaml, validate
    from orirec.studies.scaling import DEFAULT_TRAIN, TABLE, run_scaling
    from orirec.studies.tables import markdown_table
    from orirec.tracking import Tracker

    with user_errors():
        try:
            n = [int(c) for c in counts.split(",") if c.strip()]
        except ValueError:
            raise ValueError(f"--counts: expected comma-separated integers, got {counts!r}") from None
        if not n or min(n) < 1 or images_per_protein < 3 or recover_proteins < 0:
            raise ValueError("--counts must be >= 1, --images-per-protein >= 3, --recover-proteins >= 0")
        cfg = load_yaml(config, TrainConfig) if config is not None else validate(TrainConfig, DEFAULT_TRAIN, "defaults")
        tracker = Tracker(track, tracking_uri, "orirec-scaling", out)
        with progress_bars(progress) as make:
            rows = run_scaling(
                train_store, test_store, out, cfg, n, val_store=val_store, images_per_protein=images_per_protein,
                recover_proteins=recover_proteins or None, recover_steps=recover_steps, seed=seed, tracker=tracker,
                say=lambda line: console.print(line, highlight=False, markup=False, emoji=False), progress=progress,
                protein_progress=make("test proteins"),
            )  # fmt: skip
    typer.echo(markdown_table(rows, TABLE))
    typer.echo(f"\n(written to {out / 'scaling.md'}, scaling.csv, scaling.json, scaling.png)")


def per_protein(
    model: Annotated[Path, typer.Argument(help="trained checkpoint (best.pt)")],
    store: Annotated[Path, typer.Argument(help="store with ground truth (e.g. the test split)")],
    out: Annotated[Path, typer.Option("--out", "-o", help="output folder (resumes a table already there)")] = Path(
        "runs/per-protein"
    ),
    images_per_protein: Annotated[int, typer.Option(help="images recovered per protein (the first N)")] = 150,
    proteins: Annotated[str | None, typer.Option(help="comma-separated protein indices (default all)")] = None,
    recover_steps: Annotated[int, typer.Option(help="refinement steps of each recovery")] = 200,
    seed: Annotated[int, typer.Option(help="seed of the pairs and the recovery")] = 0,
    progress: Annotated[bool, typer.Option(help="show a progress bar")] = True,
    track: _TRACK = False,
    tracking_uri: _URI = None,
) -> None:
    """One row per protein: distance MAE, err_o4/err_rot/err_dir medians and acc@20 of orientations recovered from
    the model's distances, with the protein's size, radius of gyration and symmetry.

    Writes OUT/per_protein.{md,csv,json,png}.

    Example: orirec per-protein runs/multi/train/checkpoints/best.pt test.zarr --out runs/per-protein
    """
    from orirec.studies.per_protein import TABLE, per_protein_results, summarize_rows, write_per_protein
    from orirec.studies.tables import markdown_table
    from orirec.tracking import Tracker

    with user_errors():
        try:
            chosen = [int(p) for p in proteins.split(",") if p.strip()] if proteins else None
        except ValueError:
            raise ValueError(f"--proteins: expected comma-separated integers, got {proteins!r}") from None
        with progress_bars(progress) as make:
            rows = per_protein_results(
                model, store, out, images_per_protein, chosen, steps=recover_steps, seed=seed,
                progress=make("proteins"),
            )  # fmt: skip
        paths = write_per_protein(out, rows, f"{model} on {store}")
        summary = summarize_rows(rows)
        tracker = Tracker(track, tracking_uri, "orirec-per-protein", out)
        with tracker.run("per-protein", tags={"model": str(model), "store": str(store)}):
            tracker.log_metrics(summary)
            for p in paths.values():
                tracker.log_artifact(p)
    typer.echo(markdown_table(rows, TABLE))
    typer.echo(f"\nOver proteins: {summary}\n(written to {out / 'per_protein.md'})")
