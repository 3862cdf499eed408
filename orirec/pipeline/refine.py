"""Projection-matching refinement as a step of recovery, or on its own on any orientations of a store's images."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from orirec.config import RefineConfig
from orirec.estimators.projection_matching import refine_projection_matching
from orirec.pipeline.results import RefineStageResult
from orirec.store import open_store
from orirec.store.orientations import read_orientations, source_image_names, write_orientations

UNREFINED = "orientations_unrefined.csv"  # the recovery's orientations before refinement, beside orientations.csv
CHECKPOINT = "refine_checkpoint.npz"


def refine_step(
    cfg: RefineConfig,
    images: np.ndarray,
    rows: np.ndarray,
    q: np.ndarray,
    pixel_size_A: float,
    out_dir: Path,
    seed: int = 0,
    progress=None,
    store_max_shift_px: float | None = None,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Refine ``q`` of ``images`` (store ``rows``); writes ``OUT/orientations_unrefined.csv`` first and
    ``OUT/refine_checkpoint.npz`` after every round (a rerun resumes; more rounds extend a finished one).

    ``cfg.max_shift_px`` (default ``store_max_shift_px``, the store's recorded shift range) bounds the search
    for each image's in-plane shift. Returns the refined quaternions and a summary (``refine_*`` keys;
    ``refine_rounds`` lists the rounds).
    """
    t0 = time.perf_counter()
    out_dir.mkdir(parents=True, exist_ok=True)
    write_orientations(out_dir / UNREFINED, rows, q)
    res = refine_projection_matching(
        images, q, pixel_size_A, rounds=cfg.rounds, schedule=cfg.schedule_deg, resolution_A=cfg.resolution_A,
        box_px=cfg.box_px, seed=seed, checkpoint=out_dir / CHECKPOINT, progress=progress,
        max_shift_px=cfg.max_shift_px if cfg.max_shift_px is not None else float(store_max_shift_px or 0.0),
    )  # fmt: skip
    last = res.rounds[-1]
    return res.quaternions, {
        "refine_box_px": res.box_px,
        "refine_score": last["score"],
        "refine_change_median_deg": last["change_median_deg"],
        "refine_at_edge": last["at_edge"],
        "refine_shift_median_px": last["shift_median_px"],
        "refine_fsc_half_0143_A_before": res.rounds[0]["fsc_half_0143_A_before"],
        "refine_fsc_half_0143_A": last["fsc_half_0143_A_after"],
        "refine_resumed_rounds": res.resumed_rounds,
        "time_refine_s": time.perf_counter() - t0,
        "refine_rounds": res.rounds,
    }


def stage_refine(
    cfg: RefineConfig, store: Path, orientations: Path, out_dir: Path, seed: int = 0, progress=None
) -> RefineStageResult:
    """Refine the orientations (an orirec CSV of store rows, or a STAR file mapped to them) of a store's images; writes
    ``OUT/orientations.{csv,star}``, ``OUT/orientations_unrefined.csv`` and ``OUT/refine_result.json``."""
    if cfg.rounds < 1:
        raise ValueError("refine: rounds must be at least 1")
    s = open_store(store)
    rows, q = read_orientations(orientations, s)
    if rows.min() < 0 or rows.max() >= s.n_images:
        raise ValueError(f"{orientations}: rows outside the store's {s.n_images} images ({store})")
    q, summary = refine_step(cfg, s.load_images(rows), rows, q, s.pixel_size_A, out_dir, seed, progress, s.max_shift_px)
    write_orientations(out_dir / "orientations.csv", rows, q)
    write_orientations(out_dir / "orientations.star", rows, q, source_image_names(s, rows, out_dir))
    result = RefineStageResult(len(rows), str(orientations), summary)
    (out_dir / "refine_result.json").write_text(json.dumps(result.as_dict(), indent=2))
    return result
