"""``orirec ab-initio``: orientations of a store's images (or one protein's) with no model and no ground truth."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from orirec.config import RefineConfig, validate
from orirec.config.estimators import AbInitioConfig
from orirec.estimators.ab_initio.dataset import DatasetAbInitioResult, SerialMapper, ab_initio_dataset
from orirec.estimators.ab_initio.estimator import CHECKPOINT, ab_initio_summary, mask_radius_A, shift_search_px
from orirec.estimators.ab_initio.passes import StoreImages
from orirec.pipeline.refine import UNREFINED
from orirec.pipeline.results import AbInitioStageResult
from orirec.reconstruct.symmetry_hint import point_group_hint
from orirec.simulate.shards import check_device
from orirec.store import open_store
from orirec.store.orientations import source_image_names, write_orientations
from orirec.structures.maps import write_map

__all__ = ["CHECKPOINT", "PASSES", "stage_ab_initio"]

PASSES = "ab_initio_passes.npz"  # the state after each finished pass over every image


def stage_ab_initio(
    store: Path,
    out_dir: Path,
    *,
    protein: int | None = None,
    n: int | None = None,
    settings: dict[str, Any] | None = None,
    refine: RefineConfig | None = None,
    seed: int = 0,
    progress=None,
    refine_progress=None,
) -> AbInitioStageResult:
    """Ab initio orientations of the first ``n`` images of ``store`` (of ``protein``, a store index, if given),
    read shard by shard (:func:`~orirec.estimators.ab_initio.dataset.ab_initio_dataset`): the restarts on a
    random subset of ``settings["subset"]`` images, then one global pass over the others and ``refine.rounds``
    local rounds over all, each pass a map-reduce over the store's shards (on ``settings["num_workers"]`` Ray
    workers when more than 1, or on the cluster of ``RAY_ADDRESS``). ``settings`` are
    :class:`~orirec.config.estimators.AbInitioConfig`'s fields. ``progress`` and ``refine_progress`` are
    ``(done, total)`` callbacks (the subset's iterations; the images posed by the passes).

    Writes ``OUT/orientations.{csv,star}``, ``OUT/orientations_unrefined.csv`` (after the global pass, when rounds
    follow), ``OUT/ab_initio_map.mrc`` (the final map, at the matching box), ``OUT/half_map_{1,2}.mrc``,
    ``OUT/ab_initio_subset_map.mrc`` and ``OUT/ab_initio_result.json``. The finished restarts go to
    ``OUT/ab_initio_checkpoint.npz`` and the finished passes to ``OUT/ab_initio_passes.npz``: a rerun after an
    interruption resumes after the last of them."""
    s = open_store(store)
    if protein is not None and int(protein) not in set(np.unique(s.protein).tolist()):
        held = ", ".join(str(p) for p in np.unique(s.protein)[:20])
        raise ValueError(f"{store}: no protein {protein}; the store holds protein(s) {held}")
    rows = np.arange(s.n_images) if protein is None else np.flatnonzero(s.protein == int(protein))
    rows = rows[: len(rows) if n is None else int(n)]
    if len(rows) < 10:
        raise ValueError(f"{store}: ab initio needs at least 10 images, got {len(rows)}")
    cfg = _config(settings, seed)
    refine = refine or RefineConfig()
    device = _device(cfg.device)
    images = StoreImages(str(store))
    t0 = time.perf_counter()
    radius_A = cfg.particle_radius_A
    if radius_A is None:  # read off up to 2,000 images, not all of them
        sample = np.sort(np.random.default_rng(seed).choice(rows, min(len(rows), 2000), replace=False))
        radius_A = mask_radius_A(images(sample), s.pixel_size_A)
    max_shift_px = shift_search_px(cfg.max_shift_px, s.max_shift_px, s.box_px)
    search = cfg.search_settings() | {"checkpoint": cfg.checkpoint or out_dir / CHECKPOINT}
    schedule = [refine.schedule_deg[min(r, len(refine.schedule_deg) - 1)] for r in range(refine.rounds)]
    mapper = _mapper(cfg.num_workers, device)
    try:
        result = ab_initio_dataset(
            images, rows, s.box_px, s.pixel_size_A, shard_size=int(s.attrs.get("shard_size", 1000)),
            subset=cfg.subset, settings=search, schedule=schedule, refine_resolution_A=refine.resolution_A,
            max_shift_px=max_shift_px, particle_radius_A=radius_A, seed=cfg.seed, mapper=mapper, device=device,
            checkpoint=out_dir / PASSES, progress=progress, pass_progress=refine_progress,
        )  # fmt: skip
    finally:
        getattr(mapper, "close", lambda: None)()
    summary = AbInitioStageResult(len(rows), protein, time.perf_counter() - t0)
    summary.search.update({f"ab_initio_{k}": v for k, v in ab_initio_summary(result, radius_A, max_shift_px).items()})
    summary.search.update({"ab_initio_num_workers": cfg.num_workers, "ab_initio_device": device})
    summary.refine.update(_passes_summary(result, refine))
    hint = point_group_hint(result.volume, result.pixel_size_A)  # C1 ab initio splits a pseudo-symmetric particle
    summary.search.update({"ab_initio_symmetry_hint": hint.group, "ab_initio_symmetry_message": hint.message()})
    _write(out_dir, s, rows, result, refine)
    summary.details.update(
        {"ab_initio_iterations": result.subset.iterations, "ab_initio_restart_scores": result.subset.restart_scores,
         "ab_initio_restarts_averaged_ids": result.subset.members, "ab_initio_passes": result.passes}
    )  # fmt: skip
    (out_dir / "ab_initio_result.json").write_text(json.dumps(summary.as_dict(), indent=2, default=float))
    return summary


def _config(settings: dict[str, Any] | None, seed: int) -> AbInitioConfig:
    unknown = sorted(set(settings or {}) - set(AbInitioConfig.model_fields))
    if unknown:
        raise ValueError(f"ab initio settings: unknown {unknown}; known: {sorted(AbInitioConfig.model_fields)}")
    return validate(AbInitioConfig, {**(settings or {}), "seed": seed}, "ab initio settings")


def _device(name: str) -> str:
    """The torch device of ``name`` (``auto``: cuda when this machine has one), checked (one-line error)."""
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    check_device(name)
    return name


def _mapper(num_workers: int, device: str):
    """Serial in this process for 1 worker and no ``RAY_ADDRESS``; Ray actors (1 GPU each on CUDA) otherwise."""
    if num_workers == 1 and not os.environ.get("RAY_ADDRESS"):
        return SerialMapper()
    from orirec.distributed.shards import RayShardMapper

    return RayShardMapper(num_workers, num_gpus_per_worker=1.0 if device.startswith("cuda") else 0.0)


def _passes_summary(result: DatasetAbInitioResult, refine: RefineConfig) -> dict[str, Any]:
    """The local rounds' numbers, under the refinement's usual ``refine_*`` keys."""
    rounds = [p for p in result.passes if p["pass"].startswith("local")]
    if not rounds:
        return {}
    last = rounds[-1]
    return {
        "refine_box_px": result.box_px,
        "refine_score": last["score"],
        "refine_change_median_deg": last["change_median_deg"],
        "refine_shift_median_px": float(np.median(np.linalg.norm(result.shifts_px, axis=1))),
        "refine_fsc_half_05_A": last.get("fsc_half_05_A"),
        "refine_fsc_half_0143_A": last.get("fsc_half_0143_A"),
        "refine_resumed_rounds": max(0, result.passes_read_back - 1),
        "time_refine_s": sum(p["time_s"] for p in rounds),
        "refine_rounds": [{"round": i + 1} | p for i, p in enumerate(rounds)],
    }


def _write(out_dir: Path, s, rows: np.ndarray, result: DatasetAbInitioResult, refine: RefineConfig) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    write_map(out_dir / "ab_initio_map.mrc", result.volume, result.pixel_size_A)
    write_map(out_dir / "ab_initio_subset_map.mrc", result.subset.volume, result.subset.pixel_size_A)
    if result.half_maps is not None:
        for k, m in enumerate(result.half_maps, 1):
            write_map(out_dir / f"half_map_{k}.mrc", m, result.pixel_size_A)
    if refine.rounds > 0 and result.global_quaternions is not None:
        write_orientations(out_dir / UNREFINED, rows, result.global_quaternions)
    write_orientations(out_dir / "orientations.csv", rows, result.quaternions)
    write_orientations(out_dir / "orientations.star", rows, result.quaternions, source_image_names(s, rows, out_dir))
