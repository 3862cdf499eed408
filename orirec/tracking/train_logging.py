"""What a training run leaves in MLflow besides params and per-epoch metrics (driver / rank 0 only):
the encoder as an MLflow pytorch model with a signature, and a d_p vs d_q scatter plot of the validation
pairs. Called after training by ``orirec train`` (and by the pipeline's training stage)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from orirec.tracking.mlflow_tracker import Tracker

__all__ = ["log_sweep", "log_trained_model", "validation_pairs"]


def validation_pairs(checkpoint: str | Path, store: str | Path) -> tuple[Any, Any, Any]:
    """(model, d_p, d_q): the checkpoint's model and its d_p / d_q (rad) on the run's own validation pairs
    (the same split and pairs as in training: rebuilt from the seed and fractions saved in the checkpoint)."""
    from orirec.config import TrainConfig
    from orirec.models import load_model
    from orirec.train import PairData, evaluate_pairs, make_loss

    model, meta = load_model(checkpoint)
    # TrainConfig's defaults stand in for keys an older checkpoint did not record
    cfg = {**TrainConfig().model_dump(), **((meta.get("extra") or {}).get("config") or {})}
    data = PairData.from_store(
        store, val_fraction=float(cfg["val_fraction"]), val_pairs=int(cfg["val_pairs"]), seed=int(cfg["seed"])
    )
    res = evaluate_pairs(model, data, make_loss("l2"), int(cfg["val_bins"]), keep_pairs=True)
    return model, res["d_p"], res["d_q"]


def log_trained_model(tracker: Tracker, checkpoint: str | Path, store: str | Path, n_example: int = 8) -> str | None:
    """Log the checkpoint's encoder as an MLflow model (signature from ``n_example`` store images → embeddings),
    the checkpoint file, and ``plots/dp_vs_dq.png`` from the validation pairs. Returns the model URI (None when
    tracking is disabled)."""
    if not tracker.enabled:
        return None
    import matplotlib.pyplot as plt

    from orirec.evaluate.distances import scatter_figure
    from orirec.store import open_store

    model, d_p, d_q = validation_pairs(checkpoint, store)
    examples = open_store(store).images[:n_example]
    uri = tracker.log_model(model, examples)
    tracker.log_artifact(checkpoint, "checkpoint")
    fig = scatter_figure(d_p, d_q, title="validation pairs: d_p vs d_q")
    tracker.log_figure(fig, "plots/dp_vs_dq.png")
    plt.close(fig)
    return uri


def log_sweep(tracker: Tracker, sweep: dict[str, Any], space: dict[str, Any], best_config: str | Path, store) -> None:
    """Log a Tune sweep (orirec.distributed.tune.run_sweep) as one parent run with a child run per trial.

    Parent: the search space and sweep size as params, the best trial's ``best_val_mae`` and id, the best
    TrainConfig YAML and the best trial's model (MLflow model + scatter plot). Each child: the trial's sampled
    params, per-epoch metrics (step = epoch), status and best_val_mae.
    """
    if not tracker.enabled:
        return
    best = sweep["best"]
    with tracker.run("tune", tags={"orirec.kind": "tune"}):
        tracker.log_params({"space": {k: str(v) for k, v in space.items()}, "num_trials": len(sweep["trials"])})
        tracker.log_metrics({"best_val_mae": best["best_val_mae"]})
        tracker.set_tags({"best_trial": str(best["trial_id"])})
        tracker.log_artifact(best_config)
        for t in sweep["trials"]:
            with tracker.run(
                f"trial-{t['trial_id']}", nested=True, tags={"status": t["status"], "trial_id": t["trial_id"]}
            ):
                tracker.log_params(t["config"])
                tracker.log_history(t["history"])
                done = {"best_val_mae": t["best_val_mae"], "epochs_run": t["epochs_run"]}
                tracker.log_metrics({k: v for k, v in done.items() if math.isfinite(v)})
        if Path(best["checkpoint"]).is_file():
            log_trained_model(tracker, best["checkpoint"], store)
