"""Ab initio orientations by stochastic global projection matching (:mod:`orirec.estimators.ab_initio.search`).

No training and no ground truth: one map pooled from all the images, refined from a random start. Images
with a CTF are phase-flipped first (as for ASPIRE's common lines); the shift search covers the dataset's
``max_shift_px``; the particle's radius, for the map's mask and the NCC's disk, is read off the images
(:func:`~orirec.estimators.ab_initio.search.estimate_particle_radius_A`) and widened by ``RADIUS_MARGIN``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from orirec.config.estimators import AbInitioConfig
from orirec.estimators.ab_initio.search import (
    AbInitioResult,
    ab_initio,
    check_particle_size,
    estimate_particle_radius_A,
)
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


class AbInitio(Estimator):
    """Orientation estimator: stochastic global projection matching from a random start (see the module)."""

    gauge_note = "ab initio map: global rotation + handedness (harmless), registered for err_rot"

    def __init__(self, seed: int = 0, progress=None, **settings: Any) -> None:
        super().__init__("ab-initio")
        self.seed, self.settings, self.progress = seed, settings, progress
        self.result: AbInitioResult | None = None  # the last one (map, shifts, iterations)

    def resume_in(self, folder: Path) -> None:
        """Keep each finished restart in ``folder`` (``ab_initio_checkpoint.npz``) so that a rerun resumes there,
        unless a checkpoint was given."""
        if self.settings.get("checkpoint") is None:
            self.settings["checkpoint"] = Path(folder) / CHECKPOINT

    def estimate(self, data: EstimatorData) -> np.ndarray:
        """Orientations (n, 4) of ``data.images``; the radius used and the last iteration go to ``summary``."""
        images = data.phase_flipped_images()
        settings = dict(self.settings)
        max_shift_px = shift_search_px(settings.pop("max_shift_px", None), data.max_shift_px, images.shape[-1])
        if settings.get("particle_radius_A") is None:
            seen_A = estimate_particle_radius_A(images, data.pixel_size_A)
            check_particle_size(seen_A, data.pixel_size_A)
            settings["particle_radius_A"] = RADIUS_MARGIN * seen_A
        result = ab_initio(
            images, data.pixel_size_A, max_shift_px=max_shift_px, seed=self.seed,
            progress=self.progress, **settings,
        )  # fmt: skip
        self.result = result
        self.summary = {"particle_radius_A": settings["particle_radius_A"], "max_shift_px": max_shift_px}
        self.summary["restart"] = result.restart
        self.summary["restarts_averaged"] = len(result.members)
        self.summary["restarts_read_back"] = result.restarts_read_back  # from a checkpoint: not in the time
        self.summary |= result.iterations[-1]
        return result.quaternions


@register("ab-initio")
def _make(config: AbInitioConfig, progress=None) -> AbInitio:
    return AbInitio(config.seed, progress=progress, **config.model_dump(exclude={"seed"}))
