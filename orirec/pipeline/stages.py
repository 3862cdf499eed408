"""The stages of one local run: simulate → train → recover → reconstruct → evaluate.

Each stage reads its inputs from paths and writes its outputs into a folder, so stages can
be run one by one from the CLI or chained by :func:`orirec.pipeline.run.run_all`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from orirec.config import ReconstructConfig, RecoverConfig, SimulateConfig, TrainConfig
from orirec.evaluate.metrics import distance_metrics, orientation_metrics, symmetric_reference
from orirec.evaluate.report import REGISTERED_MAP
from orirec.geometry import quat_distance, register_rotation
from orirec.models import edge_distances, embed_images, load_checkpoint, load_model
from orirec.models.checkpoint import check_image_size
from orirec.pipeline.refine import UNREFINED, refine_step
from orirec.pipeline.results import (
    EvaluateResult,
    ReconstructResult,
    RecoverStageResult,
    SimulateResult,
    TrainResult,
    train_result,
)
from orirec.reconstruct import fsc_report, reconstruct, reconstruct_half_maps
from orirec.recover.solve import check_pair_model, consistency_score, images_with_copies, solve_orientations
from orirec.simulate.to_store import simulate_to_store
from orirec.store import open_store, reference_volume
from orirec.store.orientations import read_orientations, source_image_names, store_orientations, write_orientations
from orirec.structures.maps import write_map
from orirec.train import train_loop_per_worker


def ray_block_runner(num_workers: int):
    """Ray actors for the parts of a partitioned recovery when ``num_workers`` > 1, else None (in this process)."""
    if num_workers <= 1:
        return None
    from orirec.distributed.recover import RayBlockRunner

    return RayBlockRunner(num_workers)


def write_json(path: Path, data: Mapping[str, Any]) -> None:
    """Write ``data`` (a dict, or a stage result) as indented JSON (numpy scalars/arrays converted)."""
    path.write_text(json.dumps(dict(data), indent=2, default=_to_builtin))


def _to_builtin(o: Any) -> Any:
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serializable: {type(o).__name__}")


def stage_simulate(
    cfg: SimulateConfig,
    store: Path,
    overwrite: bool = False,
    progress=None,
    split: str | None = None,
    num_workers: int = 1,
) -> SimulateResult:
    """Simulate into ``store`` (``num_workers`` > 1: a pool of Ray actors)."""
    t0 = time.perf_counter()
    runner = None
    if num_workers > 1:
        from orirec.distributed.simulate import ray_shard_runner

        runner = ray_shard_runner(num_workers)
    res = simulate_to_store(cfg, store, overwrite=overwrite, progress=progress, split=split, run_shards=runner)
    return SimulateResult(res.n_images, res.shards_written, res.shards_skipped, time.perf_counter() - t0)


def stage_train(
    cfg: TrainConfig, store: Path, out_dir: Path, resume: bool = False, progress: bool = True, report=None
) -> TrainResult:
    """Train the Siamese distance model on ``store`` in-process; checkpoints under ``out_dir``."""
    loop_cfg = {
        **cfg.model_dump(),  # every TrainConfig field is a key of the loop's config
        "model": cfg.model.model_dump(exclude_none=True),
        "store": str(store),
        "out_dir": str(out_dir),
        "resume": resume,
        "progress": progress,
        "report": report,
    }
    t0 = time.perf_counter()
    if cfg.num_workers > 1:
        from orirec.distributed.ray_train import train_with_ray

        train_with_ray(loop_cfg, cfg.num_workers)
        summary = training_summary(out_dir / "checkpoints" / "last.pt")
    else:
        summary = train_loop_per_worker(loop_cfg)
    result = train_result(summary, time.perf_counter() - t0)
    write_json(out_dir / "train_result.json", result)
    return result


def training_summary(last_checkpoint: Path) -> dict[str, Any]:
    """best_val_mae, best_epoch, epochs_run and the last epoch's metrics, read from a checkpoint."""
    meta = load_checkpoint(last_checkpoint)
    extra = meta.get("extra") or {}
    history = extra.get("history", [])
    return {
        **{k: v for k, v in (history[-1] if history else {}).items() if k != "epoch"},
        "best_val_mae": extra.get("best_val_mae"),
        "best_epoch": extra.get("best_epoch"),
        "epochs_run": len(history),
        "history": history,
        "checkpoint": str(last_checkpoint.with_name("best.pt")),
    }


def select_images(n_images: int, max_images: int | None) -> np.ndarray:
    """Rows of the store to recover: the first ``max_images`` (all by default)."""
    return np.arange(n_images if max_images is None else min(max_images, n_images))


def stage_recover(
    cfg: RecoverConfig,
    store: Path,
    checkpoint: Path,
    out_dir: Path,
    progress=None,
    gauge_progress=None,
    refine_progress=None,
) -> RecoverStageResult:
    """Embed images, build the pair graph, estimate distances, recover orientations, resolve the gauge and
    (``cfg.refine.rounds`` > 0) refine them by projection matching.

    With ``cfg.gauge``, in-plane rotated copies of ``cfg.gauge_sources`` images join the graph; they fix
    the inversion and the beam axis, and a 1-D search on reconstruction consistency fixes the rest.
    Writes ``orientations.{csv,star}``, ``graph.npz`` (edges among the images) and ``recover_result.json``;
    with refinement also ``orientations_unrefined.csv`` and a per-round ``refine_checkpoint.npz``.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    s = open_store(store)
    idx = select_images(s.n_images, cfg.max_images)
    n = len(idx)
    images = s.load_images(idx)
    t0 = time.perf_counter()
    model, _meta = load_model(checkpoint)
    check_image_size(model, checkpoint, s.box_px, store)
    check_pair_model(cfg, model)
    resume_file = out_dir / "recover_checkpoint.npz"  # partitioned runs: resume after an interruption
    solved = solve_orientations(
        n,
        cfg,
        features=lambda copies: embed_images(model, images_with_copies(images, copies)),
        distances=lambda emb, i, j: edge_distances(model, emb, i, j),  # a pair model: its own head
        gauge_score=consistency_score(images, cfg) if cfg.gauge else None,
        progress=progress,
        gauge_progress=gauge_progress,
        checkpoint=resume_file,
        block_runner=ray_block_runner(cfg.num_workers),
    )
    resume_file.unlink(missing_ok=True)
    res, q = solved.recovery, solved.quaternions
    summary = RecoverStageResult(
        n_images=n, n_nodes=solved.n_nodes, n_edges=len(solved.i), l_or=res.l_or, loss_history=res.loss_history,
        time_embed_s=solved.time_graph_s, time_recover_s=res.wall_time_s, partitions=cfg.partitions or cfg.num_workers,
    )  # fmt: skip
    if solved.gauge is not None:
        gauge = solved.gauge
        summary.gauge.update(
            {
                "gauge_transposed": gauge.transposed,
                "gauge_axis_spread_deg": gauge.axis_spread_deg,
                "gauge_alpha_deg": float(np.degrees(gauge.alpha_rad)),
                "gauge_scores": gauge.alpha_scores,
                "gauge_score": max(sc for _, sc in gauge.alpha_scores),
                "time_gauge_s": solved.time_gauge_s,
            }
        )
    if cfg.refine.rounds:
        q, refined = refine_step(
            cfg.refine, images, idx, q, s.pixel_size_A, out_dir, cfg.seed, refine_progress, s.max_shift_px
        )
        summary.refine.update(refined)
    else:
        (out_dir / UNREFINED).unlink(missing_ok=True)  # from an earlier run with refinement: not these orientations
    write_orientations(out_dir / "orientations.csv", idx, q)
    write_orientations(out_dir / "orientations.star", idx, q, source_image_names(s, idx, out_dir))
    gi, gj, gd = solved.edges_among_images()
    np.savez_compressed(out_dir / "graph.npz", indices=idx, i=gi, j=gj, d_p=gd.astype(np.float32))
    summary.time_s = time.perf_counter() - t0
    write_json(out_dir / "recover_result.json", summary)
    return summary


def _images_and_orientations(store: Path, orientations: Path | None):
    """The store, and the rows and quaternions of an orientation file of its images (orirec CSV, or a STAR file
    whose rows map to the store's, RELION's own included); None: every image at the store's own angles."""
    s = open_store(store)
    idx, q = store_orientations(s) if orientations is None else read_orientations(orientations, s)
    if idx.min() < 0 or idx.max() >= s.n_images:
        raise ValueError(f"{orientations}: indices outside the store's {s.n_images} images")
    return s, idx, q


def stage_reconstruct(
    cfg: ReconstructConfig, store: Path, orientations: Path | None, out_map: Path
) -> ReconstructResult:
    """Reconstruct a map (MRC, the store's pixel size) from the store's images at the given orientations (None: the
    store's own angles)."""
    t0 = time.perf_counter()
    s, idx, q = _images_and_orientations(store, orientations)
    vol = reconstruct(s.load_images(idx), q, pad=cfg.pad, wiener=cfg.wiener)
    out_map.parent.mkdir(parents=True, exist_ok=True)
    write_map(out_map, vol, s.pixel_size_A)
    return ReconstructResult(str(out_map), len(idx), time.perf_counter() - t0)


def stage_evaluate(
    store: Path,
    orientations: Path,
    out_dir: Path,
    graph: Path | None = None,
    reconstruct_cfg: ReconstructConfig | None = None,
) -> EvaluateResult:
    """Metrics of DESIGN §6 against the store's ground truth; FSC when the store holds a reference volume.

    The FSC against the reference uses the orientations registered to the ground truth by a global
    rotation and handedness (evaluation only); that map, in the reference's frame, is written to
    ``OUT/map_registered.mrc`` for the report. The half-map FSC needs no ground truth.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    s, idx, q = _images_and_orientations(store, orientations)
    q_true = s.quaternions[idx]
    if not np.isfinite(q_true).all():
        raise ValueError(f"{store}: no ground-truth orientations to evaluate against")
    sym = s.rows_symmetry(idx)
    metrics = EvaluateResult(sym, orientation_metrics(q, q_true, sym))
    unrefined = Path(orientations).with_name(UNREFINED)
    if unrefined.is_file():  # the same images before projection-matching refinement
        idx0, q0 = read_orientations(unrefined)
        if np.array_equal(idx0, idx):
            before = orientation_metrics(q0, q_true, sym)
            keys = ("err_rot_median", "err_o4_median", "acc10", "acc20")
            metrics.unrefined.update({f"unrefined_{k}": before[k] for k in keys})
    if graph is not None and Path(graph).is_file():
        g = np.load(graph)
        d_q = quat_distance(q_true[g["i"]], q_true[g["j"]])
        dm = distance_metrics(g["d_p"].astype(np.float64), d_q)
        metrics.distances.update({"dist_mae": dm["mae"], "dist_rmse": dm["rmse"]})
        write_json(out_dir / "distance_bins.json", dm)
    rc = reconstruct_cfg or ReconstructConfig()
    (out_dir / REGISTERED_MAP).unlink(missing_ok=True)  # from an earlier evaluation: not these orientations
    if "volumes" in s.group and len(np.unique(s.protein[idx])) == 1:
        ref = reference_volume(s.group, int(s.protein[idx][0]))
        images = s.load_images(idx)
        q_reg, _ = register_rotation(q, symmetric_reference(q, q_true, sym))
        curves: dict[str, dict] = {}
        for label, qq in (("recovered", q_reg), ("true", q_true)):
            vol = reconstruct(images, qq, pad=rc.pad, wiener=rc.wiener)
            rep = fsc_report(vol, ref, s.pixel_size_A)
            metrics.fsc[f"fsc_ref_{label}_05_A"] = rep["fsc_05_A"]
            metrics.fsc[f"fsc_ref_{label}_0143_A"] = rep["fsc_0143_A"]
            if label == "recovered":  # the map in the reference's frame, for the report's side-by-side slices
                write_map(out_dir / REGISTERED_MAP, vol, s.pixel_size_A)
            curves[f"reference vs {label}"] = {"freq_per_A": rep["freq_per_A"], "curve": rep["curve"]}
        h1, h2 = reconstruct_half_maps(images, q, pad=rc.pad, wiener=rc.wiener, seed=rc.seed)
        half = fsc_report(h1, h2, s.pixel_size_A)
        metrics.fsc["fsc_half_0143_A"] = half["fsc_0143_A"]
        metrics.fsc["fsc_half_05_A"] = half["fsc_05_A"]
        curves["half-maps"] = {"freq_per_A": half["freq_per_A"], "curve": half["curve"]}
        write_json(out_dir / "fsc_curves.json", curves)  # for the run report
    write_json(out_dir / "metrics.json", metrics)
    return metrics
