"""Ab initio orientations by stochastic global projection matching (:mod:`orirec.estimators.ab_initio.search`).

No training and no ground truth: one map pooled from all the images, refined from a random start. Images
with a CTF are phase-flipped first (as for ASPIRE's common lines); the shift search covers the dataset's
``max_shift_px``; the particle's radius, for the map's mask and the NCC's disk, is read off the images
(:func:`~orirec.estimators.ab_initio.search.estimate_particle_radius_A`) and widened by ``RADIUS_MARGIN``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from orirec.config.estimators import AbInitioConfig
from orirec.estimators.ab_initio.dataset import DatasetAbInitioResult, ab_initio_dataset
from orirec.estimators.ab_initio.passes import ArrayImages
from orirec.estimators.ab_initio.search import check_particle_size, estimate_particle_radius_A
from orirec.estimators.base import Estimator, EstimatorData, register

__all__ = ["AbInitio"]

CHECKPOINT = "ab_initio_checkpoint.npz"  # the finished restarts: a rerun resumes, more restarts extend
RADIUS_MARGIN = 1.3  # the variance profile ends at the outermost atoms; the map's density reaches further
UNKNOWN_SHIFT_FRACTION = 0.1  # of the box: the shift search of particles whose shift range is not recorded


def shift_search_px(given: float | None, recorded: float | None, box_px: int) -> float:
    """The radius (px) of the in-plane shift search: ``given``, else the store's ``recorded`` range (simulated
    stores), else :data:`UNKNOWN_SHIFT_FRACTION` of the box (imported particles: off-centre by an unknown amount,
    and ±1 px without a search already leaves the map a blob)."""
    if given is not None:
        return float(given)
    if recorded is not None:
        return float(recorded)
    return UNKNOWN_SHIFT_FRACTION * box_px


def mask_radius_A(images: np.ndarray, pixel_size_A: float, given: float | None = None) -> float:
    """The radius (Å) of ab initio's mask and NCC disk: ``given``, else the particle's radius read off ``images``
    (warning when implausible) widened by :data:`RADIUS_MARGIN`."""
    if given is not None:
        return float(given)
    seen_A = estimate_particle_radius_A(images, pixel_size_A)
    check_particle_size(seen_A, pixel_size_A)
    return RADIUS_MARGIN * seen_A


class AbInitio(Estimator):
    """Orientation estimator: stochastic global projection matching from a random start on a subset, then one
    global pass over the other images against its map (see the module)."""

    gauge_note = "ab initio map: global rotation + handedness (harmless), registered for err_rot"

    def __init__(self, config: AbInitioConfig | None = None, progress=None) -> None:
        super().__init__("ab-initio")
        self.config = config or AbInitioConfig()
        self.progress = progress
        self.checkpoint_dir: Path | None = None
        self.result: DatasetAbInitioResult | None = None  # the last one (maps, shifts, passes)

    def resume_in(self, folder: Path) -> None:
        """Keep each finished restart (``ab_initio_checkpoint.npz``) and pass in ``folder``, so that a rerun
        resumes there (unless the config names a checkpoint)."""
        self.checkpoint_dir = Path(folder)

    def estimate(self, data: EstimatorData) -> np.ndarray:
        """Orientations (n, 4) of ``data.images``; the radius used and the last iteration go to ``summary``."""
        images = data.phase_flipped_images()
        cfg = self.config
        max_shift_px = shift_search_px(cfg.max_shift_px, data.max_shift_px, images.shape[-1])
        radius_A = mask_radius_A(images[: cfg.subset], data.pixel_size_A, cfg.particle_radius_A)
        settings = cfg.search_settings()
        if settings["checkpoint"] is None and self.checkpoint_dir is not None:
            settings["checkpoint"] = self.checkpoint_dir / CHECKPOINT
        result = ab_initio_dataset(
            ArrayImages(images), np.arange(len(images)), images.shape[-1], data.pixel_size_A, shard_size=1000,
            subset=cfg.subset, settings=settings, schedule=(), refine_resolution_A=cfg.resolution_end_A,
            max_shift_px=max_shift_px, particle_radius_A=radius_A, seed=cfg.seed, device=cfg.device,
            progress=self.progress,
        )  # fmt: skip
        self.result = result
        self.summary = ab_initio_summary(result, radius_A, max_shift_px)
        return result.quaternions


def ab_initio_summary(result: DatasetAbInitioResult, radius_A: float, max_shift_px: float) -> dict:
    """The numbers of a run: radius (Å), shift range (px), restarts kept and the subset's last iteration."""
    sub = result.subset
    out = {"particle_radius_A": radius_A, "max_shift_px": max_shift_px, "restart": sub.restart}
    out |= {"restarts_averaged": len(sub.members), "restarts_read_back": sub.restarts_read_back}  # read: not timed
    out |= {"subset": len(result.subset_positions)}
    if sub.symmetry_score is not None:  # --symmetry: how well the C1 map's axes of the group fit
        out["symmetry_axes_correlation"] = sub.symmetry_score
    return out | sub.iterations[-1]


@register("ab-initio")
def _make(config: AbInitioConfig, progress=None) -> AbInitio:
    return AbInitio(config, progress=progress)
