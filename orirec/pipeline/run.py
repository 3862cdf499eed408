"""Chain the stages of one run on this machine, tracked in MLflow (one parent run, a child per stage).

The stages and their paths come from a :class:`~orirec.pipeline.spec.PipelineSpec` (a plain
:class:`~orirec.config.RunConfig` runs every default stage). A stage whose ``done.json`` matches its config
hash and whose outputs exist is skipped, so an interrupted or extended run resumes where it stopped.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from orirec.config import RunConfig, TrainConfig, deep_merge, validate
from orirec.config.provenance import version_info
from orirec.evaluate.report import REGISTERED_MAP, write_report
from orirec.pipeline import spec as S
from orirec.pipeline.stages import (
    stage_evaluate,
    stage_reconstruct,
    stage_recover,
    stage_simulate,
    stage_train,
    write_json,
)
from orirec.store import open_store
from orirec.store.orientations import read_orientations
from orirec.tracking import Tracker
from orirec.tracking.train_logging import log_trained_model


@dataclass(frozen=True)
class RunPaths:
    """Local working paths of every stage output of one run."""

    root: Path
    store: Path
    eval_store: Path
    tune: Path
    train: Path
    ab_initio: Path
    recover: Path
    reconstruct: Path
    evaluate: Path
    report: Path
    orientations: Path  # the folder of the orientations.csv that reconstruct/evaluate/report read: recover or ab_initio

    @classmethod
    def of(cls, spec: S.PipelineSpec, root: str | Path) -> RunPaths:
        """Resolve the spec's ``paths`` against the run folder ``root``."""
        root = Path(root)
        loc = {k: S.locate(spec, root, k).local for k in S.PipelinePaths.model_fields}
        del loc["test_store"]
        ev, orient = S.locate(spec, root, spec.eval_store_key).local, loc[spec.orientations_key]
        return cls(root=root, eval_store=ev, orientations=orient, **loc)

    @property
    def checkpoint(self) -> Path:
        """The best checkpoint of the training stage."""
        return self.train / "checkpoints" / "best.pt"

    @property
    def map(self) -> Path:
        """The reconstructed map (MRC)."""
        return self.reconstruct / "map.mrc"


def write_spec(spec: S.PipelineSpec, path: Path) -> None:
    """Write the resolved pipeline (all defaults filled in, ``--set`` applied), stamped with the version and the
    git commit of the orirec that runs it (:func:`~orirec.config.provenance.version_info`)."""
    data = spec.model_dump(mode="json")
    data.update(version_info())
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def run_report(spec: S.PipelineSpec, paths: RunPaths, out: Path | None = None) -> dict[str, Any]:
    """Write the run's HTML report (and PNGs) into ``out`` (default ``paths.report``); see ``write_report``."""
    return write_report(
        out or paths.report,
        store=paths.eval_store,
        train_dir=paths.train,
        recover_dir=paths.orientations,
        map_path=paths.map,
        evaluate_dir=paths.evaluate,
        title=f"orirec run {spec.name}",
    )


EVALUATE_SKIPPED = "skipped.json"  # evaluate's marker when the store has no ground truth (its reason)
EVALUATE_FILES = ("metrics.json", "fsc_curves.json", "distance_bins.json", REGISTERED_MAP)


def missing_ground_truth(store: Path, orientations: Path) -> str | None:
    """Why the images of ``orientations`` cannot be evaluated (one line), or None when the store holds their true
    orientations (an imported store has none: its quaternions are NaN)."""
    s = open_store(store)
    rows, _ = read_orientations(orientations, s)
    if not np.isfinite(s.quaternions[rows]).all():
        return f"{store} holds no ground-truth orientations (imported particles?): nothing to evaluate against"
    return None


def run_all(
    cfg: RunConfig,
    run_dir: str | Path,
    overwrite: bool = False,
    progress: Callable[[str], Any] | None = None,
    train_progress: bool = True,
    force: bool = False,
    log: Callable[[str], Any] | None = None,
) -> dict[str, Any]:
    """Run the pipeline's stages into ``run_dir``; returns every stage's summary (skipped ones from done.json).

    ``progress(stage)`` returns a ``(done, total)`` callback for that stage (or None); ``force`` reruns
    finished stages; ``log(line)`` receives one line per stage (run / skipped).
    """
    spec = S.as_pipeline(cfg)
    root = Path(run_dir)
    root.mkdir(parents=True, exist_ok=True)
    paths = RunPaths.of(spec, root)
    write_spec(spec, root / "config.yaml")
    tracker = Tracker(spec.tracking.enabled, spec.tracking.uri, spec.tracking.experiment, root)
    tracker.enable_system_metrics()  # CPU/memory of every run, sampled by MLflow in the background
    cb = progress or (lambda stage: None)
    say = log or (lambda line: None)
    hashes = S.stage_hashes(spec)
    out: dict[str, Any] = {"skipped": []}
    t0 = time.perf_counter()
    runners = _stage_runners(spec, paths, overwrite, cb, train_progress, tracker, say)
    stamp = {f"orirec.{k}": str(v) for k, v in version_info().items() if v is not None}
    with tracker.run(spec.name, tags=stamp) as parent_id:
        tracker.log_params(spec.model_dump(mode="json", exclude={"stages", "paths", "test", "description"}))
        for stage in spec.active_stages():
            if not force and S.is_done(spec, root, stage, hashes[stage]):
                out[stage] = (S.read_done(root, stage) or {}).get("summary", {})
                out["skipped"].append(stage)
                say(f"{stage}: done before with the same config (hash {hashes[stage]}), skipped")
                continue
            inputs, outputs = S.stage_io(spec, stage)
            for key in inputs:
                S.fetch(S.locate(spec, root, key))
            S.clear_done(root, stage)
            say(f"{stage}: running")
            with tracker.run(stage, nested=True, tags={"orirec.stage_hash": hashes[stage]}):
                out[stage] = dict(runners[stage]())  # a stage result, as the JSON it is written as
            for key in outputs:
                S.publish(S.locate(spec, root, key))
            S.mark_done(spec, root, stage, hashes[stage], out[stage])
        if isinstance(out.get("evaluate"), dict):
            tracker.log_metrics(out["evaluate"])
        tracker.log_metrics({"total_time_s": time.perf_counter() - t0})
    out["total_time_s"] = time.perf_counter() - t0
    out["mlflow_run_id"] = parent_id
    out["tracking_uri"] = tracker.uri if spec.tracking.enabled and tracker.failed is None else None
    out["tracking_failed"] = tracker.failed  # MLflow failed and the run went on untracked: say so at the end
    return out


def _stage_runners(
    spec: S.PipelineSpec,
    paths: RunPaths,
    overwrite: bool,
    cb,
    train_progress: bool,
    tracker: Tracker,
    say: Callable[[str], Any] = lambda line: None,
) -> dict[str, Callable[[], Mapping[str, Any]]]:
    """One zero-argument callable per stage, each returning the stage's JSON-able summary; ``say(line)`` gets the
    one-line reason of a stage that has nothing to do (evaluate without ground truth)."""

    def simulate() -> Mapping[str, Any]:
        tracker.log_params({**spec.simulate.model_dump(mode="json"), "split": spec.split})
        sim = spec.simulate.model_copy(
            update={"inputs": S.localize_inputs(spec.simulate.inputs, paths.root / "inputs")}
        )
        res = stage_simulate(sim, paths.store, overwrite=overwrite, progress=cb("simulate"), split=spec.split)
        tracker.log_metrics(res)
        return res

    def simulate_test() -> Mapping[str, Any]:
        assert spec.test is not None  # a simulate_test stage exists only with a test section
        sim = spec.test_simulate_config()
        sim = sim.model_copy(update={"inputs": S.localize_inputs(sim.inputs, paths.root / "inputs")})
        tracker.log_params({**sim.model_dump(mode="json"), "split": spec.test.split})
        res = stage_simulate(
            sim, paths.eval_store, overwrite=overwrite, progress=cb("simulate_test"), split=spec.test.split
        )
        tracker.log_metrics(res)
        return res

    def tune() -> Mapping[str, Any]:
        from orirec.distributed.tune import load_search_space, run_sweep

        tc = spec.tune
        assert tc is not None  # a tune stage exists only with a tune section
        tracker.log_params(tc.model_dump(mode="json"))
        base = spec.train.model_copy(update={"epochs": tc.epochs, "pairs_per_epoch": tc.pairs_per_epoch})
        space = load_search_space(tc.space)
        sweep = run_sweep(
            paths.store,
            paths.tune,
            space,
            base,
            tc.num_samples,
            tc.workers_per_trial,
            tc.max_concurrent,
            seed=spec.seed,
        )
        best = {k: v for k, v in sweep["best"].items() if k not in ("history",)}
        paths.tune.mkdir(parents=True, exist_ok=True)
        write_json(paths.tune / "best_values.json", {"values": best["config"], "best": best})
        tracker.log_metrics({"best_val_mae": best["best_val_mae"], "trials": len(sweep["trials"])})
        return {"best_val_mae": best["best_val_mae"], "best_values": best["config"], "trials": len(sweep["trials"])}

    def train_config() -> TrainConfig:
        """``train`` with the sweep's best values merged on top when a tune stage ran."""
        if spec.tune is None or "tune" not in spec.active_stages():
            return spec.train
        values = json.loads((paths.tune / "best_values.json").read_text())["values"]
        return validate(TrainConfig, deep_merge(spec.train.model_dump(mode="json"), values), "tune best values")

    def train() -> Mapping[str, Any]:
        cfg = train_config()
        tracker.log_params(cfg.model_dump(mode="json"))
        res = stage_train(
            cfg,
            paths.store,
            paths.train,
            progress=train_progress,
            report=lambda m, ckpt=None: tracker.log_metrics(m, step=int(m.get("epoch", 0))),
        )
        tracker.log_metrics({k: v for k, v in res.items() if isinstance(v, (int, float))})
        log_trained_model(tracker, paths.checkpoint, paths.store)  # MLflow model + checkpoint + d_p vs d_q plot
        out = {k: v for k, v in res.items() if k not in ("history", "report")}
        if cfg is not spec.train:
            out["tuned"] = {
                "lr": cfg.lr,
                "batch_size": cfg.batch_size,
                "optimizer": cfg.optimizer,
                "model": cfg.model.model_dump(),
            }
        return out

    def recover() -> Mapping[str, Any]:
        tracker.log_params(spec.recover.model_dump(mode="json"))
        res = stage_recover(
            spec.recover,
            paths.eval_store,
            paths.checkpoint,
            paths.recover,
            progress=cb("recover"),
            gauge_progress=cb("gauge"),
            refine_progress=cb("refine"),
        )
        for step, v in enumerate(res["loss_history"]):
            if step % 10 == 0:
                tracker.log_metrics({"l_or": v}, step=step)
        tracker.log_metrics({k: v for k, v in res.items() if isinstance(v, (int, float))})
        tracker.log_artifact(paths.recover)
        for r in res.get("refine_rounds", []):
            tracker.log_metrics({f"refine_{k}": v for k, v in r.items() if k != "round"}, step=r["round"])
        return {k: v for k, v in res.items() if k != "loss_history"}

    def ab_initio() -> Mapping[str, Any]:
        from orirec.pipeline.ab_initio import stage_ab_initio

        ac = spec.ab_initio
        assert ac is not None  # an ab_initio stage exists only with an ab_initio section
        tracker.log_params(ac.model_dump(mode="json"))
        t0 = time.perf_counter()
        res = stage_ab_initio(
            paths.eval_store,
            paths.ab_initio,
            protein=ac.protein,
            n=ac.n,
            settings=ac.settings(),
            refine=ac.refine,
            seed=ac.seed,
            progress=cb("ab initio"),
            refine_progress=cb("refine"),
        )
        tracker.log_metrics({k: v for k, v in res.items() if isinstance(v, (int, float))})
        for r in res.get("refine_rounds", []):
            tracker.log_metrics({f"refine_{k}": v for k, v in r.items() if k != "round"}, step=r["round"])
        for f in ("orientations.csv", "orientations.star", "ab_initio_map.mrc", "ab_initio_result.json"):
            tracker.log_artifact(paths.ab_initio / f)
        return {**res, "time_s": time.perf_counter() - t0}

    def reconstruct() -> Mapping[str, Any]:
        res = stage_reconstruct(spec.reconstruct, paths.eval_store, paths.orientations / "orientations.csv", paths.map)
        tracker.log_artifact(paths.map)
        return res

    def evaluate() -> Mapping[str, Any]:
        orientations = paths.orientations / "orientations.csv"
        reason = missing_ground_truth(paths.eval_store, orientations)
        if reason is not None:  # an imported store: a marker (so a rerun skips it), no metrics
            say(f"evaluate: skipped, {reason}")
            paths.evaluate.mkdir(parents=True, exist_ok=True)
            for f in EVALUATE_FILES:  # an earlier evaluation's, of other orientations
                (paths.evaluate / f).unlink(missing_ok=True)
            skipped = {"skipped": reason}
            write_json(paths.evaluate / EVALUATE_SKIPPED, skipped)
            return skipped
        (paths.evaluate / EVALUATE_SKIPPED).unlink(missing_ok=True)
        res = stage_evaluate(
            paths.eval_store,
            orientations,
            paths.evaluate,
            graph=paths.orientations / "graph.npz",
            reconstruct_cfg=spec.reconstruct,
        )
        tracker.log_metrics(res)
        tracker.log_artifact(paths.evaluate)
        return res

    def report() -> Mapping[str, Any]:
        res = run_report(spec, paths)
        tracker.log_artifact(paths.report, "report")
        return res

    return {
        "simulate": simulate,
        "simulate_test": simulate_test,
        "tune": tune,
        "train": train,
        "ab_initio": ab_initio,
        "recover": recover,
        "reconstruct": reconstruct,
        "evaluate": evaluate,
        "report": report,
    }
