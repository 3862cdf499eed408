"""``orirec train``: learn the orientation distance from a store."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from orirec.cli.common import (
    config_default,
    config_help,
    echo_table,
    make_tracker,
    shown_default,
    tracking_done,
    user_errors,
)
from orirec.config import PRESETS, ModelConfig, TrainConfig

T = TrainConfig
#: defaults of the command line when no --config file is given: the small preset's training schedule and model;
#: TrainConfig's defaults for the rest
_CLI_DEFAULTS: dict[str, Any] = {
    k: PRESETS["small"]["train"][k] for k in ("epochs", "batch_size", "pairs_per_epoch", "model")
}


def train(
    store: Annotated[Path, typer.Argument(help="projection store (STORE.zarr)")],
    out: Annotated[Path, typer.Option("--out", "-o", help="run folder for checkpoints")] = Path("runs/train"),
    config: Annotated[
        Path | None, typer.Option(help="TrainConfig YAML (e.g. best_config.yaml from orirec tune); options override")
    ] = None,
    epochs: Annotated[
        int | None, typer.Option(help=config_help(T, "epochs", shown_default(_CLI_DEFAULTS["epochs"])))
    ] = None,
    num_workers: Annotated[
        int | None, typer.Option(help=config_help(T, "num_workers", shown_default(config_default(T, "num_workers"))))
    ] = None,
    preset: Annotated[
        str | None,
        typer.Option(help=config_help(ModelConfig, "preset", shown_default(_CLI_DEFAULTS["model"]["preset"]))),
    ] = None,
    family: Annotated[
        str | None,
        typer.Option(help=config_help(ModelConfig, "family", shown_default(config_default(ModelConfig, "family")))),
    ] = None,
    batch_size: Annotated[
        int | None, typer.Option(help=config_help(T, "batch_size", shown_default(_CLI_DEFAULTS["batch_size"])))
    ] = None,
    pairs_per_epoch: Annotated[
        int | None,
        typer.Option(help=config_help(T, "pairs_per_epoch", shown_default(_CLI_DEFAULTS["pairs_per_epoch"]))),
    ] = None,
    lr: Annotated[float | None, typer.Option(help=config_help(T, "lr", shown_default(config_default(T, "lr"))))] = None,
    seed: Annotated[
        int | None, typer.Option(help=config_help(T, "seed", shown_default(config_default(T, "seed"))))
    ] = None,
    on_the_fly: Annotated[bool | None, typer.Option(help=config_help(T, "on_the_fly"))] = None,
    init_from: Annotated[Path | None, typer.Option(help=config_help(T, "init_from"))] = None,
    resume: Annotated[bool, typer.Option(help="continue from OUT/checkpoints/last.pt")] = False,
    progress: Annotated[bool, typer.Option(help="show progress bars")] = True,
    track: Annotated[
        bool, typer.Option("--track/--no-track", help="log params, metrics, model and plots to MLflow")
    ] = True,
    tracking_uri: Annotated[
        str | None, typer.Option(help="MLflow URI; default $MLFLOW_TRACKING_URI, else sqlite:///OUT/mlflow.db")
    ] = None,
    experiment: Annotated[str, typer.Option(help="MLflow experiment")] = "orirec-train",
) -> None:
    """Train the Siamese distance network; the best checkpoint is OUT/checkpoints/best.pt.

    Example: orirec train runs/demo/projections.zarr --epochs 12 --out runs/mytrain

    Tracked in MLflow by default (OUT/mlflow.db, or $MLFLOW_TRACKING_URI, or --tracking-uri; --no-track: off).
    With the best config of a sweep, on 2 Ray Train workers:
    orirec train s.zarr --config runs/tune/best_config.yaml --num-workers 2

    Fine-tuning (e.g. a noiseless model on noisy images of the same protein):
    orirec train noisy.zarr --init-from runs/clean/checkpoints/best.pt --out runs/noisy
    """
    from orirec.config import deep_merge, load_yaml, validate
    from orirec.pipeline.stages import stage_train
    from orirec.store import open_store

    given = {
        "epochs": epochs,
        "num_workers": num_workers,
        "batch_size": batch_size,
        "pairs_per_epoch": pairs_per_epoch,
        "lr": lr,
        "seed": seed,
        "on_the_fly": on_the_fly,
        "init_from": None if init_from is None else str(init_from),
    }
    overrides: dict[str, Any] = {k: v for k, v in given.items() if v is not None}
    model = {k: v for k, v in {"preset": preset, "family": family}.items() if v is not None}
    if model:
        overrides["model"] = model
    with user_errors():
        if config is not None:
            cfg = load_yaml(config, TrainConfig, overrides)
        else:
            cfg = validate(TrainConfig, deep_merge(_CLI_DEFAULTS, overrides), "command line")
        open_store(store)  # a missing or bad store fails here, before any folder or MLflow run is made
        out.mkdir(parents=True, exist_ok=True)  # a read-only or file --out too
        if track:
            tracker = make_tracker(True, tracking_uri, experiment, out)
            res = _tracked(cfg, store, out, resume, progress, tracker)
        else:
            res = dict(stage_train(cfg, store, out, resume=resume, progress=progress))
    echo_table(f"trained {out}", {k: v for k, v in res.items() if isinstance(v, (int, float, str))})
    if track:
        tracking_done(tracker)


def _tracked(cfg, store: Path, out: Path, resume: bool, progress: bool, tracker) -> dict:
    """stage_train inside one MLflow run: params, per-epoch metrics, the model (with signature) and plots."""
    from orirec.pipeline.stages import stage_train
    from orirec.tracking.train_logging import log_trained_model

    tracker.enable_system_metrics()
    live = cfg.num_workers == 1  # Ray workers report to Ray; their history is logged from the checkpoint after
    with tracker.run(f"train-{out.name}", tags={"store": str(store)}):
        tracker.log_params(cfg.model_dump(mode="json"))
        res = dict(
            stage_train(
                cfg,
                store,
                out,
                resume=resume,
                progress=progress,
                report=(lambda m, ckpt=None: tracker.log_metrics(m, step=int(m.get("epoch", 0)))) if live else None,
            )
        )
        if not live:
            tracker.log_history(res.get("history", []))
        per_epoch = set((res.get("history") or [{}])[-1])
        tracker.log_metrics({k: v for k, v in res.items() if isinstance(v, (int, float)) and k not in per_epoch})
        res["model_uri"] = log_trained_model(tracker, res["checkpoint"], store)
    if tracker.failed is None:
        res["tracking_uri"] = tracker.uri
    return res
