"""``orirec tune``: a Ray Tune sweep (ASHA) over the SAME ``TorchTrainer`` as ``orirec train`` (no second loop).

Each trial is a small driver function that builds the trainer of :mod:`orirec.distributed.ray_train` for its
sampled config and fits it; per-epoch metrics reach Tune through Ray Train's ``TuneReportCallback``
(the Ray Train V2 way of combining Train and Tune), and ASHA stops weak trials on the validation MAE.

Search space file (YAML; keys are dotted TrainConfig paths, values one distribution each)::

    model.family: {choice: [vgg, resnet, polar]}
    lr: {loguniform: [1.0e-4, 3.0e-3]}
    batch_size: {choice: [32, 64]}
    model.feature_dim: {randint: [16, 129]}      # high end exclusive
    model.downsample: {grid: [1, 2]}             # every value in every sample (grid search)

Distributions: ``choice`` (list), ``grid`` (list), ``uniform``, ``loguniform`` ([lo, hi]), ``randint``
([lo, hi), integers). Ray is imported only inside functions.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import yaml

from orirec.config import TrainConfig, deep_merge, validate
from orirec.distributed.ray_train import build_trainer
from orirec.distributed.runtime import ensure_ray

__all__ = ["DISTRIBUTIONS", "load_search_space", "loop_config_for", "run_sweep", "to_nested"]

DISTRIBUTIONS = ("choice", "grid", "uniform", "loguniform", "randint")


def to_nested(flat: dict[str, Any]) -> dict[str, Any]:
    """``{"model.family": v}`` → ``{"model": {"family": v}}``."""
    out: dict[str, Any] = {}
    for key, value in flat.items():
        node = out
        *parents, leaf = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return out


def _probe_values(spec: dict[str, Any]) -> list[Any]:
    """Values of a distribution that must each be a valid config value (choices, or the range ends)."""
    ((kind, arg),) = spec.items()
    if kind in ("choice", "grid"):
        return list(arg)
    lo, hi = arg
    return [int(lo), int(hi) - 1] if kind == "randint" else [lo, hi]


def load_search_space(path: str | Path) -> dict[str, dict[str, Any]]:
    """Read and check a search space YAML (module docstring); returns ``{dotted key: {kind: arg}}``.

    Every key must be a TrainConfig field and every value the distribution may produce (each choice,
    each range end) must validate; errors name the file and the key.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: search space file not found")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ValueError(f"{path}: not valid YAML ({e})") from None
    if not isinstance(data, dict) or not data:
        raise ValueError(f"{path}: expected a non-empty mapping of 'dotted.key: {{distribution: args}}'")
    for key, spec in data.items():
        if not isinstance(spec, dict) or len(spec) != 1 or next(iter(spec)) not in DISTRIBUTIONS:
            raise ValueError(f"{path}: {key}: expected one of {DISTRIBUTIONS} as {{kind: args}}, got {spec!r}")
        kind, arg = next(iter(spec.items()))
        if kind in ("choice", "grid") and (not isinstance(arg, list) or not arg):
            raise ValueError(f"{path}: {key}: {kind} needs a non-empty list, got {arg!r}")
        if kind in ("uniform", "loguniform", "randint"):
            if not isinstance(arg, list) or len(arg) != 2 or not float(arg[0]) < float(arg[1]):
                raise ValueError(f"{path}: {key}: {kind} needs [lo, hi] with lo < hi, got {arg!r}")
            if kind == "loguniform" and float(arg[0]) <= 0:
                raise ValueError(f"{path}: {key}: loguniform needs lo > 0, got {arg!r}")
        for value in _probe_values(spec):
            validate(TrainConfig, to_nested({key: value}), f"{path}: {key}={value!r}")
    return data


def _tune_space(space: dict[str, dict[str, Any]]) -> dict[str, Any]:
    from ray import tune

    make = {
        "choice": tune.choice,
        "grid": tune.grid_search,
        "uniform": lambda a: tune.uniform(*a),
        "loguniform": lambda a: tune.loguniform(*a),
        "randint": lambda a: tune.randint(*a),
    }
    return to_nested({k: make[kind](arg) for k, spec in space.items() for kind, arg in spec.items()})


def loop_config_for(base: TrainConfig, sampled: dict[str, Any], store: str, out_dir: str) -> dict[str, Any]:
    """The loop config of one trial: ``base`` with the sampled (nested) values merged on top, validated."""
    cfg = validate(TrainConfig, deep_merge(base.model_dump(mode="json"), sampled), "tune trial config")
    return {
        **cfg.model_dump(),
        "model": cfg.model.model_dump(exclude_none=True),
        "store": store,
        "out_dir": out_dir,
        "resume": False,
        "progress": False,
    }


def _trial(config: dict[str, Any]) -> None:
    """One Tune trial: fit the shared TorchTrainer on the trial's config, metrics forwarded to Tune."""
    from ray import tune
    from ray.tune.integration.ray_train import TuneReportCallback

    trial_dir = Path(config["root"]) / "trials" / tune.get_context().get_trial_id()
    base = validate(TrainConfig, config["base"], "tune base config")
    loop_cfg = loop_config_for(base, config["train_loop_config"], config["store"], str(trial_dir))
    trainer = build_trainer(
        loop_cfg, int(config["workers_per_trial"]), name="train", callbacks=[TuneReportCallback()], max_failures=0
    )
    trainer.fit()


def run_sweep(
    store: str | Path,
    out_dir: str | Path,
    space: dict[str, dict[str, Any]],
    base: TrainConfig | None = None,
    num_samples: int = 8,
    workers_per_trial: int = 1,
    max_concurrent: int | None = None,
    grace_period: int = 1,
    seed: int = 0,
) -> dict[str, Any]:
    """Sweep ``space`` (from :func:`load_search_space`) with ASHA on ``val_mae`` (rad, minimized).

    Each trial trains ``base`` (TrainConfig; its ``epochs`` is ASHA's max_t) with the sampled values on
    ``workers_per_trial`` Ray Train workers of 1 CPU; at most ``max_concurrent`` trials at a time (default:
    as many as the CPUs allow). Sampling is seeded. Returns ``{"best": {...}, "trials": [...]}`` where each
    trial has ``trial_id``, ``config`` (the sampled values), ``status`` ("complete", "stopped" by ASHA,
    "no epoch" or "error"), ``best_val_mae``, ``epochs_run``,
    ``history`` (per-epoch metrics) and ``checkpoint`` (its best.pt), and ``best`` is the best trial with
    ``train_config``, the full TrainConfig dict to write out for ``orirec train --config``.
    """
    import os

    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search import BasicVariantGenerator

    base = base or TrainConfig()
    if num_samples < 1 or workers_per_trial < 1:
        raise ValueError(
            f"tune: num_samples and workers_per_trial must be >= 1, got {num_samples} and {workers_per_trial}"
        )
    store, out_dir = Path(store).resolve(), Path(out_dir).resolve()
    if not store.exists():
        raise FileNotFoundError(f"{store}: projection store not found")
    cpus = os.cpu_count() or 1
    max_concurrent = max_concurrent or max(cpus // workers_per_trial, 1)
    n_trials = num_samples * math.prod(len(s["grid"]) for s in space.values() if "grid" in s)
    # A trial's driver takes 0.01 CPU (Tune needs a non-empty request), its Ray Train workers 1 CPU each, and
    # at most max_concurrent trials run at once (the generator's limit). The local cluster gets one logical CPU
    # per worker of EVERY trial: on a local cluster without the dashboard, Ray Train V2 may keep a finished
    # trial's worker placement group reserved (its cleaner cannot query the state API), which otherwise starves
    # later trials (measured: trials 3 and 4 of 8 timed out waiting for workers on a 3-CPU cluster).
    ensure_ray(num_cpus=max(cpus, n_trials * workers_per_trial) + 1)
    param_space = {
        "train_loop_config": _tune_space(space),
        "base": base.model_dump(mode="json"),
        "store": str(store),
        "root": str(out_dir),
        "workers_per_trial": workers_per_trial,
    }
    tuner = tune.Tuner(
        tune.with_resources(_trial, {"CPU": 0.01}),
        param_space=param_space,
        tune_config=tune.TuneConfig(
            metric="val_mae",
            mode="min",
            num_samples=num_samples,
            scheduler=ASHAScheduler(
                time_attr="training_iteration", max_t=base.epochs, grace_period=grace_period, reduction_factor=2
            ),
            # seeded sampling; the concurrency limit lives in the generator (Tune ignores max_concurrent_trials
            # when a generator instance is passed)
            search_alg=BasicVariantGenerator(random_state=seed, max_concurrent=max_concurrent),
        ),
        run_config=tune.RunConfig(name="tune", storage_path=str(out_dir / "ray"), verbose=0),
    )
    grid = tuner.fit()
    trials = [_trial_summary(grid[k], out_dir, base.epochs) for k in range(len(grid))]
    ok = [t for t in trials if math.isfinite(t["best_val_mae"])]
    if not ok:
        errors = "; ".join(str(t["error"]) for t in trials if t["error"])[:500]
        raise RuntimeError(f"tune: no trial finished an epoch ({errors})")
    best = min(ok, key=lambda t: t["best_val_mae"])
    best_cfg = validate(TrainConfig, deep_merge(base.model_dump(mode="json"), best["config"]), "best trial")
    return {"best": {**best, "train_config": best_cfg.model_dump(mode="json")}, "trials": trials}


def _status(error, epochs: int, max_epochs: int) -> str:
    """ "error", "no epoch", "stopped" (by ASHA, before max_epochs) or "complete"."""
    if error:
        return "error"
    if epochs == 0:
        return "no epoch"
    return "complete" if epochs >= max_epochs else "stopped"


def _trial_summary(result, out_dir: Path, max_epochs: int) -> dict[str, Any]:
    """Plain dict of one Tune result (driver side)."""
    df = result.metrics_dataframe
    history = [] if df is None else df.to_dict("records")
    maes = [float(h["val_mae"]) for h in history if "val_mae" in h and h["val_mae"] == h["val_mae"]]
    trial_id = (result.metrics or {}).get("trial_id") or Path(result.path).name
    return {
        "trial_id": trial_id,
        "config": result.config["train_loop_config"],
        "status": _status(result.error, len(maes), max_epochs),
        "error": str(result.error) if result.error else None,
        "best_val_mae": min(maes) if maes else math.inf,
        "epochs_run": len(history),
        "history": history,
        "checkpoint": str(out_dir / "trials" / str(trial_id) / "checkpoints" / "best.pt"),
    }
