"""Chain the stages of one run on this machine, tracked in MLflow (one parent run, a child per stage)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orirec.config import RunConfig, dump_yaml
from orirec.pipeline.stages import stage_evaluate, stage_reconstruct, stage_recover, stage_simulate, stage_train
from orirec.tracking import Tracker


@dataclass
class RunPaths:
    """Where each stage of a run writes, under one run folder."""

    root: Path
    store: Path = field(init=False)
    train: Path = field(init=False)
    recover: Path = field(init=False)
    evaluate: Path = field(init=False)
    map: Path = field(init=False)

    def __post_init__(self) -> None:
        self.store = self.root / "projections.zarr"
        self.train = self.root / "train"
        self.recover = self.root / "recover"
        self.evaluate = self.root / "evaluate"
        self.map = self.root / "reconstruct" / "map.mrc"

    @property
    def checkpoint(self) -> Path:
        """The best checkpoint of the training stage."""
        return self.train / "checkpoints" / "best.pt"


def run_all(
    cfg: RunConfig,
    run_dir: str | Path,
    overwrite: bool = False,
    progress: Callable[[str], Any] | None = None,
    train_progress: bool = True,
) -> dict[str, Any]:
    """Run simulate → train → recover → reconstruct → evaluate into ``run_dir``; returns every stage's summary.

    ``progress(stage)`` returns a ``(done, total)`` callback for that stage (or None).
    """
    paths = RunPaths(Path(run_dir))
    paths.root.mkdir(parents=True, exist_ok=True)
    dump_yaml(cfg, paths.root / "config.yaml")
    tracker = Tracker(cfg.tracking.enabled, cfg.tracking.uri, cfg.tracking.experiment, paths.root)
    cb = progress or (lambda stage: None)
    out: dict[str, Any] = {}
    t0 = time.perf_counter()
    with tracker.run(cfg.name) as parent_id:
        tracker.log_params(cfg.model_dump(mode="json"))
        with tracker.run("simulate", nested=True):
            tracker.log_params(cfg.simulate.model_dump(mode="json"))
            out["simulate"] = stage_simulate(cfg.simulate, paths.store, overwrite=overwrite, progress=cb("simulate"))
            tracker.log_metrics(out["simulate"])
        with tracker.run("train", nested=True):
            tracker.log_params(cfg.train.model_dump(mode="json"))
            res = stage_train(
                cfg.train,
                paths.store,
                paths.train,
                progress=train_progress,
                report=lambda m, ckpt=None: tracker.log_metrics(m, step=int(m.get("epoch", 0))),
            )
            out["train"] = {k: v for k, v in res.items() if k not in ("history",)}
            tracker.log_metrics({k: v for k, v in res.items() if isinstance(v, (int, float))})
            tracker.log_artifact(paths.checkpoint, "model")
        with tracker.run("recover", nested=True):
            tracker.log_params(cfg.recover.model_dump(mode="json"))
            out["recover"] = stage_recover(
                cfg.recover,
                paths.store,
                paths.checkpoint,
                paths.recover,
                progress=cb("recover"),
                gauge_progress=cb("gauge"),
            )
            for step, v in enumerate(out["recover"]["loss_history"]):
                if step % 10 == 0:
                    tracker.log_metrics({"l_or": v}, step=step)
            tracker.log_metrics({k: v for k, v in out["recover"].items() if isinstance(v, (int, float))})
            tracker.log_artifact(paths.recover)
        with tracker.run("reconstruct", nested=True):
            out["reconstruct"] = stage_reconstruct(
                cfg.reconstruct, paths.store, paths.recover / "orientations.csv", paths.map
            )
            tracker.log_artifact(paths.map)
        with tracker.run("evaluate", nested=True):
            out["evaluate"] = stage_evaluate(
                paths.store,
                paths.recover / "orientations.csv",
                paths.evaluate,
                graph=paths.recover / "graph.npz",
                reconstruct_cfg=cfg.reconstruct,
            )
            tracker.log_metrics(out["evaluate"])
            tracker.log_artifact(paths.evaluate)
        tracker.log_metrics({**out["evaluate"], "total_time_s": time.perf_counter() - t0})
    out["total_time_s"] = time.perf_counter() - t0
    out["mlflow_run_id"] = parent_id
    out["tracking_uri"] = tracker.uri if cfg.tracking.enabled else None
    return out
