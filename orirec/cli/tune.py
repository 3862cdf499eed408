"""``orirec tune``: Ray Tune (ASHA) sweep over the training run; writes the best TrainConfig for ``orirec train``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from orirec.cli.common import (
    TrackingUri,
    config_default,
    config_help,
    echo_table,
    make_tracker,
    tracking_done,
    user_errors,
)
from orirec.config import TrainConfig, TuneConfig

U = TuneConfig


def tune(
    store: Annotated[Path, typer.Argument(help="projection store (STORE.zarr)")],
    space: Annotated[Path, typer.Option(help=config_help(U, "space"))] = Path(config_default(U, "space")),
    out: Annotated[Path, typer.Option("--out", "-o", help="sweep folder")] = Path("runs/tune"),
    config: Annotated[Path | None, typer.Option(help="base TrainConfig YAML (values the space does not set)")] = None,
    num_samples: Annotated[int, typer.Option(help=config_help(U, "num_samples"))] = config_default(U, "num_samples"),
    epochs: Annotated[int, typer.Option(help=config_help(U, "epochs"))] = config_default(U, "epochs"),
    pairs_per_epoch: Annotated[int, typer.Option(help=config_help(U, "pairs_per_epoch"))] = config_default(
        U, "pairs_per_epoch"
    ),
    workers_per_trial: Annotated[int, typer.Option(help=config_help(U, "workers_per_trial"))] = config_default(
        U, "workers_per_trial"
    ),
    max_concurrent: Annotated[int | None, typer.Option(help=config_help(U, "max_concurrent"))] = config_default(
        U, "max_concurrent"
    ),
    seed: Annotated[int, typer.Option(help="seed of the sampling and of every trial")] = config_default(
        TrainConfig, "seed"
    ),
    track: Annotated[
        bool, typer.Option("--track/--no-track", help="log the sweep to MLflow (parent run + a child per trial)")
    ] = True,
    tracking_uri: TrackingUri = None,
    experiment: Annotated[str, typer.Option(help="MLflow experiment")] = "orirec-tune",
) -> None:
    """Sweep architecture and optimizer settings with ASHA on the validation MAE; OUT/best_config.yaml is the
    best trial's TrainConfig, ready for ``orirec train --config``.

    Example: orirec tune runs/demo/projections.zarr --space pipelines/tune-space.yaml --num-samples 8 --out runs/tune
    """
    from orirec.config import dump_yaml, load_yaml, validate
    from orirec.distributed.tune import load_search_space, run_sweep
    from orirec.tracking.train_logging import log_sweep

    with user_errors():
        overrides = {"epochs": epochs, "pairs_per_epoch": pairs_per_epoch, "seed": seed, "num_threads": 1}
        base = load_yaml(config, TrainConfig, overrides) if config else validate(TrainConfig, overrides, "command line")
        space_spec = load_search_space(space)
        if not store.exists():
            raise FileNotFoundError(f"{store}: projection store not found")
        sweep = run_sweep(store, out, space_spec, base, num_samples, workers_per_trial, max_concurrent, seed=seed)
        best_cfg = validate(TrainConfig, sweep["best"]["train_config"], "best trial")
        best_path = out / "best_config.yaml"
        dump_yaml(best_cfg, best_path)
        best_row = {k: v for k, v in sweep["best"].items() if k != "history"}
        trials = [{k: v for k, v in t.items() if k != "history"} for t in sweep["trials"]]
        (out / "sweep.json").write_text(json.dumps({"best": best_row, "trials": trials}, indent=2, default=str))
        tracker = make_tracker(track, tracking_uri, experiment, out)
        log_sweep(tracker, sweep, space_spec, best_path, store)
    best = sweep["best"]
    rows = {
        f"trial {t['trial_id']}": f"{t['status']}, {t['epochs_run']} epochs, val MAE {t['best_val_mae']:.4f} rad"
        for t in sweep["trials"]
    }
    echo_table(
        f"sweep {out}",
        {
            **rows,
            "best trial": best["trial_id"],
            "best val MAE (rad)": best["best_val_mae"],
            "best config": str(best_path),
        },
    )
    tracking_done(tracker)
