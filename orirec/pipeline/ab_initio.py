"""``orirec ab-initio``: orientations of a store's images (or one protein's) with no model and no ground truth."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from orirec.config import RefineConfig, validate
from orirec.config.estimators import AbInitioConfig
from orirec.estimators.ab_initio.estimator import CHECKPOINT, AbInitio
from orirec.estimators.base import EstimatorData
from orirec.pipeline.refine import refine_step
from orirec.pipeline.results import AbInitioStageResult
from orirec.store import open_store
from orirec.store.orientations import source_image_names, write_orientations
from orirec.structures.maps import write_map

__all__ = ["CHECKPOINT", "stage_ab_initio"]


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
    """Ab initio orientations of the first ``n`` images of ``store`` (of ``protein``, a store index, if given);
    ``settings`` go to :func:`~orirec.estimators.ab_initio.search.ab_initio` (iterations, restarts, particle_radius_A,
    …). With ``refine.rounds`` > 0 the result is then refined by projection matching. ``progress`` and
    ``refine_progress`` are ``(done, total)`` callbacks. Writes
    ``OUT/orientations.{csv,star}`` (the ab initio ones also as ``orientations_unrefined.csv`` when refined),
    ``OUT/ab_initio_map.mrc`` (the last map, at the matching box) and ``OUT/ab_initio_result.json``; the
    finished restarts go to ``OUT/ab_initio_checkpoint.npz`` as they end, so a rerun after an interruption
    resumes at the next restart (and one asking for more restarts runs only the new ones)."""
    s = open_store(store)
    if protein is not None and int(protein) not in set(np.unique(s.protein).tolist()):
        held = ", ".join(str(p) for p in np.unique(s.protein)[:20])
        raise ValueError(f"{store}: no protein {protein}; the store holds protein(s) {held}")
    rows = np.arange(s.n_images) if protein is None else np.flatnonzero(s.protein == int(protein))
    rows = rows[: len(rows) if n is None else int(n)]
    if len(rows) < 10:
        raise ValueError(f"{store}: ab initio needs at least 10 images, got {len(rows)}")
    images = s.load_images(rows)
    t0 = time.perf_counter()
    unknown = sorted(set(settings or {}) - set(AbInitioConfig.model_fields))
    if unknown:
        raise ValueError(f"ab initio settings: unknown {unknown}; known: {sorted(AbInitioConfig.model_fields)}")
    cfg = validate(AbInitioConfig, {**(settings or {}), "seed": seed}, "ab initio settings")
    est = AbInitio(cfg.seed, progress=progress, **cfg.model_dump(exclude={"seed"}))
    est.resume_in(out_dir)
    q = est.estimate(EstimatorData(images, s.pixel_size_A, None, s.max_shift_px, s.ctf_params(rows)))
    summary = AbInitioStageResult(len(rows), protein, time.perf_counter() - t0)
    summary.search.update({f"ab_initio_{k}": v for k, v in est.summary.items()})
    out_dir.mkdir(parents=True, exist_ok=True)
    result = est.result
    assert result is not None  # estimate() sets it
    write_map(out_dir / "ab_initio_map.mrc", result.volume, result.pixel_size_A)
    if refine is not None and refine.rounds > 0:
        searched = est.summary["max_shift_px"]  # the same range as ab initio's (the store's, or 10 % of the box)
        q, info = refine_step(refine, images, rows, q, s.pixel_size_A, out_dir, seed, refine_progress, searched)
        summary.refine.update(info)
    write_orientations(out_dir / "orientations.csv", rows, q)
    write_orientations(out_dir / "orientations.star", rows, q, source_image_names(s, rows, out_dir))
    summary.details.update(
        {"ab_initio_iterations": result.iterations, "ab_initio_restart_scores": result.restart_scores,
         "ab_initio_restarts_averaged_ids": result.members}
    )  # fmt: skip
    (out_dir / "ab_initio_result.json").write_text(json.dumps(summary.as_dict(), indent=2, default=float))
    return summary
